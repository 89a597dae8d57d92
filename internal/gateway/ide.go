package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/tunnel"
)

// IDE serves an environment's code-server under /w/{id}/ide/, for its
// owner only, through the tunnel. Browsers authenticate with the session
// cookie login sets; the Authorization header and the cookie are removed
// before the request reaches the workspace, which must never see them.
func (g *Gateway) IDE(w http.ResponseWriter, r *http.Request) { g.ide.ServeHTTP(w, r) }

func (g *Gateway) ideProxy() http.Handler {
	transport := &http.Transport{
		// The URL's host is the environment id (set in Rewrite), so the
		// transport pools connections per environment.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			envID, _, _ := strings.Cut(addr, ":")
			ctx, cancel := context.WithTimeout(ctx, AgentWait)
			defer cancel()
			return g.tunnels.Dial(ctx, envID, tunnel.Header{Service: tunnel.ServiceIDE})
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			env := httpmw.Environment(pr.In)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = env.ID
			pr.Out.URL.Path = "/" + strings.TrimPrefix(pr.In.URL.Path, strings.TrimSuffix(lifecycle.IDEPath(env.ID), "/")+"/")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "localhost"
			pr.Out.Header.Del("Authorization")
			stripCookie(pr.Out, httpmw.SessionCookie)
			pr.SetXForwarded()
			if isWorkbenchPage(pr.Out) {
				// The transport then asks for gzip itself and hands
				// back the page decoded, ready for injectActivityScript.
				pr.Out.Header.Del("Accept-Encoding")
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// Nobody frames the IDE from another site. Added beside
			// code-server's own policy, not over it: a browser enforces
			// both.
			resp.Header.Add("Content-Security-Policy", "frame-ancestors 'self'")
			if isWorkbenchPage(resp.Request) {
				return g.injectActivityScript(resp, httpmw.Environment(resp.Request).ID)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.ideError(w, r, StreamError(err))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := httpmw.Environment(r)
		if err := RequireRunning(env); err != nil {
			g.ideError(w, r, err)
			return
		}
		if env.VSCodeURL == "" {
			g.ideError(w, r, errNoIDE)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

var errNoIDE = &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "This workspace has no IDE", Details: "code-server is not installed where it runs"}

// ideError answers a request the IDE cannot serve: a browser navigating to
// it gets the IDE page (which says why and offers what to do), anything
// else the API's error.
func (g *Gateway) ideError(w http.ResponseWriter, r *http.Request, err error) {
	if g.idePage != nil && httpmw.WantsPage(r) {
		g.idePage(w, r, err)
		return
	}
	g.writeError(w, r, err)
}

// IDERedirect sends /w/{id}/ide to /w/{id}/ide/ so code-server's relative
// links resolve under the prefix.
func IDERedirect(w http.ResponseWriter, r *http.Request) {
	target := lifecycle.IDEPath(chi.URLParam(r, "id"))
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

func stripCookie(r *http.Request, name string) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
}

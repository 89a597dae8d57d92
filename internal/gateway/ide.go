package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// IDE serves an environment's code-server under /w/{id}/ide/ on the
// dashboard's own origin, through the tunnel: the path-based serving that
// only --unsafe-path-based-apps turns on (see appurl for why apps normally
// have origins of their own). Browsers authenticate with the session cookie
// login sets; the Authorization header and Dev8's cookies are removed
// before the request reaches the workspace, which must never see them.
func (g *Gateway) IDE(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	if err := IDEReady(env); err != nil {
		g.IDEError(w, r, err)
		return
	}
	prefix := strings.TrimSuffix(lifecycle.IDEPath(env.ID), "/")
	g.proxy.ServeHTTP(w, withTarget(r, proxyTarget{
		app:            appurl.App{EnvironmentID: env.ID},
		path:           "/" + strings.TrimPrefix(r.URL.Path, prefix+"/"),
		activityScript: ideActivityScriptPath(env.ID),
		onError:        g.IDEError,
	}))
}

// proxyTarget is where the workspace proxy sends one request.
type proxyTarget struct {
	app appurl.App
	// path is the path on the app, from "/" (rawPath its encoding, if
	// not the default).
	path, rawPath string
	// activityScript is the src of the activity script the IDE's
	// workbench page gets (the IDE only).
	activityScript string
	// onError answers a request the workspace could not take.
	onError func(w http.ResponseWriter, r *http.Request, err error)
}

type proxyTargetKey struct{}

func withTarget(r *http.Request, t proxyTarget) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), proxyTargetKey{}, t))
}

func targetOf(r *http.Request) proxyTarget { return r.Context().Value(proxyTargetKey{}).(proxyTarget) }

// dialHost is the URL host the proxy's transport dials for app: the
// environment id, with the port for a port's app, so the transport pools
// connections per app.
func dialHost(app appurl.App) string {
	if app.IsIDE() {
		return app.EnvironmentID
	}
	return app.EnvironmentID + ".p" + strconv.Itoa(app.Port)
}

// dialHeader is the tunnel stream dialHost asks for.
func dialHeader(host string) (envID string, h tunnel.Header) {
	envID, port, ok := strings.Cut(host, ".p")
	if !ok {
		return envID, tunnel.Header{Service: tunnel.ServiceIDE}
	}
	n, _ := strconv.Atoi(port)
	return envID, tunnel.Header{Service: tunnel.ServiceTCP, Port: n}
}

// newTransport is the HTTP transport to workspaces' apps, through the
// tunnel; a URL's host is dialHost's.
func (g *Gateway) newTransport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			envID, h := dialHeader(host)
			ctx, cancel := context.WithTimeout(ctx, AgentWait)
			defer cancel()
			return g.tunnels.Dial(ctx, envID, h)
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
}

// ideHealthTimeout bounds IDEHealth's question to code-server.
const ideHealthTimeout = 10 * time.Second

// IDEHealth says whether the environment's IDE answers (GET
// /api/v1/environments/{id}/ide/health): code-server's own /healthz,
// through the tunnel. The dashboard's page for a starting workspace asks
// it before it opens the IDE, which lives on another origin it cannot ask.
func (g *Gateway) IDEHealth(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	if err := IDEReady(env); err != nil {
		g.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ideHealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dialHost(appurl.App{EnvironmentID: env.ID})+"/healthz", nil)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	req.Host = "localhost"
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		g.writeError(w, r, StreamError(err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		g.writeError(w, r, &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeUnavailable, Message: "The IDE is not ready",
			Details: "code-server answered its health check with " + resp.Status})
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// strippedCookies are Dev8's own cookies, which no workspace ever gets.
var strippedCookies = []string{httpmw.SessionCookie, httpmw.CSRFCookie, httpmw.SecurePrefix + httpmw.SessionCookie,
	httpmw.SecurePrefix + httpmw.CSRFCookie, appauth.CookieName, retryCookie}

// newProxy is the reverse proxy to workspaces' apps through the tunnel:
// code-server (the IDE), or an HTTP server on one of a workspace's ports.
// Which one, and at what path, comes with each request (withTarget).
func (g *Gateway) newProxy() http.Handler {
	return &httputil.ReverseProxy{
		Transport: g.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := targetOf(pr.In)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = dialHost(t.app)
			pr.Out.URL.Path = t.path
			pr.Out.URL.RawPath = t.rawPath
			// What the app sees as its host: development servers check it
			// (and code-server's origin check compares it with Origin's).
			pr.Out.Host = "localhost"
			if !t.app.IsIDE() {
				pr.Out.Host = "localhost:" + strconv.Itoa(t.app.Port)
			}
			pr.Out.Header.Del("Authorization")
			stripCookies(pr.Out, strippedCookies)
			pr.SetXForwarded()
			if t.activityScript != "" && isWorkbenchPage(pr.Out) {
				// The transport then asks for gzip itself and hands
				// back the page decoded, ready for injectActivityScript.
				pr.Out.Header.Del("Accept-Encoding")
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// Nobody frames the app from another site. Added beside the
			// app's own policy, not over it: a browser enforces both.
			resp.Header.Add("Content-Security-Policy", "frame-ancestors 'self'")
			// Nor does an app set (or clear) Dev8's cookies.
			dropSetCookies(resp.Header, strippedCookies)
			t := targetOf(resp.Request)
			if t.activityScript != "" && isWorkbenchPage(resp.Request) {
				return g.injectActivityScript(resp, t.app.EnvironmentID, t.activityScript)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			targetOf(r).onError(w, r, StreamError(err))
		},
	}
}

var errNoIDE = &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "This workspace has no IDE", Details: "code-server is not installed where it runs"}

// IDEReady is nil when env's IDE can be opened: the environment runs, with
// code-server.
func IDEReady(env store.Environment) error {
	if err := RequireRunning(env); err != nil {
		return err
	}
	if env.VSCodeURL == "" {
		return errNoIDE
	}
	return nil
}

// IDEError answers a request the IDE cannot serve: a browser navigating to
// it gets the IDE page (which says why and offers what to do), anything
// else the API's error.
func (g *Gateway) IDEError(w http.ResponseWriter, r *http.Request, err error) {
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

// stripCookies removes the cookies named names from r.
func stripCookies(r *http.Request, names []string) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !slices.Contains(names, c.Name) {
			r.AddCookie(c)
		}
	}
}

// dropSetCookies removes the Set-Cookie lines for names from h.
func dropSetCookies(h http.Header, names []string) {
	lines := h.Values("Set-Cookie")
	if len(lines) == 0 {
		return
	}
	h.Del("Set-Cookie")
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err == nil && slices.Contains(names, c.Name) {
			continue
		}
		h.Add("Set-Cookie", line)
	}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// agentWait bounds how long a connection waits for a just-started
// workspace's supervisor to dial in.
const agentWait = 30 * time.Second

// tunnel accepts a supervisor's tunnel and serves it until it drops.
func (a *API) tunnel(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	// The request context ends with the connection; a server shutdown
	// closes it through the http.Server.
	conn := websocket.NetConn(r.Context(), ws, websocket.MessageBinary)
	if err := a.tunnels.Serve(r.Context(), env.ID, conn); err != nil {
		a.log.WarnContext(r.Context(), "tunnel", "environment", env.ID, "err", err)
	}
}

// requireRunning refuses connections to an environment that is not running:
// there is nothing to connect to, and waiting would only hang the client.
func requireRunning(env store.Environment) error {
	if env.Status != store.StatusRunning {
		return &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Environment is not running",
			Details: fmt.Sprintf("it is %s; start it first (POST /api/v1/environments/%s/start)", env.Status, env.ID)}
	}
	return nil
}

// openStream opens a tunnel stream for h to the request's environment,
// before any websocket upgrade: a refusal (nothing on that port, not
// running) is then a plain HTTP error the client can show, not a websocket
// that closes at once. On failure it has answered the request.
func (a *API) openStream(w http.ResponseWriter, r *http.Request, h tunnel.Header) (net.Conn, bool) {
	env := httpmw.Environment(r)
	if err := requireRunning(env); err != nil {
		a.writeError(w, r, err)
		return nil, false
	}
	dialCtx, cancel := context.WithTimeout(r.Context(), agentWait)
	defer cancel()
	stream, err := a.tunnels.Dial(dialCtx, env.ID, h)
	if err != nil {
		a.writeError(w, r, streamError(err))
		return nil, false
	}
	return stream, true
}

// bridge upgrades to a websocket and joins it to a tunnel stream for h.
func (a *API) bridge(w http.ResponseWriter, r *http.Request, h tunnel.Header) {
	stream, ok := a.openStream(w, r, h)
	if !ok {
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		stream.Close()
		return
	}
	tunnel.Join(websocket.NetConn(r.Context(), ws, websocket.MessageBinary), stream)
}

// streamError explains why a workspace connection could not be made.
func streamError(err error) error {
	var refused *tunnel.RefusedError
	switch {
	case errors.As(err, &refused):
		return &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeUnavailable, Message: "The workspace refused the connection", Details: refused.Reason}
	case errors.Is(err, tunnel.ErrNotConnected):
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable, Message: "The workspace is not reachable", Details: "its supervisor has not connected to the server; if this persists, stop and start the environment"}
	}
	return fmt.Errorf("open workspace stream: %w", err)
}

// sshStream carries one SSH connection (dev8 ssh, or OpenSSH through
// `dev8 ssh --stdio` as ProxyCommand).
func (a *API) sshStream(w http.ResponseWriter, r *http.Request) {
	a.bridge(w, r, tunnel.Header{Service: tunnel.ServiceSSH})
}

// portForward carries one TCP connection to a port on the workspace's
// loopback.
func (a *API) portForward(w http.ResponseWriter, r *http.Request) {
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		a.writeError(w, r, httpapi.Validation("port: must be an integer between 1 and 65535"))
		return
	}
	a.bridge(w, r, tunnel.Header{Service: tunnel.ServiceTCP, Port: port})
}

// pty is the web terminal: client text messages are tunnel.PTYInput JSON,
// server binary messages are terminal output. Reconnecting with the same
// id within the grace period resumes the same shell with its scrollback.
func (a *API) pty(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h := tunnel.Header{Service: tunnel.ServicePTY, Reconnect: q.Get("reconnect"), Command: q.Get("command")}
	if h.Reconnect == "" || len(h.Reconnect) > 128 {
		a.writeError(w, r, httpapi.Validation("reconnect: required, an id of at most 128 characters (a UUID) naming the terminal"))
		return
	}
	for _, p := range []struct {
		name string
		dst  *uint16
		def  uint16
	}{{"width", &h.Width, 80}, {"height", &h.Height, 24}} {
		n, err := httpapi.IntParam(q.Get(p.name), p.name, int(p.def), 1, 1000)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		*p.dst = uint16(n)
	}
	stream, ok := a.openStream(w, r, h)
	if !ok {
		return
	}
	defer stream.Close()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	// Terminal output → the browser, as binary messages.
	go func() {
		defer stop()
		buf := make([]byte, 32<<10)
		for {
			n, err := stream.Read(buf)
			if n > 0 {
				if werr := ws.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				ws.Close(websocket.StatusNormalClosure, "terminal closed")
				return
			}
		}
	}()
	// Browser messages → the supervisor, one JSON line each. They are passed
	// on as they are: the supervisor parses and validates them.
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if _, err := stream.Write(append(msg, '\n')); err != nil {
			return
		}
	}
}

// ideProxy serves an environment's code-server under /w/{id}/ide/, for its
// owner only, through the tunnel. Browsers authenticate with the session
// cookie login sets; the Authorization header and the cookie are removed
// before the request reaches the workspace, which must never see them.
func (a *API) ideProxy() http.Handler {
	transport := &http.Transport{
		// The URL's host is the environment id (set in Rewrite), so the
		// transport pools connections per environment.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			envID, _, _ := strings.Cut(addr, ":")
			ctx, cancel := context.WithTimeout(ctx, agentWait)
			defer cancel()
			return a.tunnels.Dial(ctx, envID, tunnel.Header{Service: tunnel.ServiceIDE})
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
				return a.injectActivityScript(resp, httpmw.Environment(resp.Request).ID)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.writeError(w, r, streamError(err))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := httpmw.Environment(r)
		if err := requireRunning(env); err != nil {
			a.writeError(w, r, err)
			return
		}
		if env.VSCodeURL == "" {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "This workspace has no IDE", Details: "code-server is not installed where it runs"})
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// ideRedirect sends /w/{id}/ide to /w/{id}/ide/ so code-server's relative
// links resolve under the prefix.
func ideRedirect(w http.ResponseWriter, r *http.Request) {
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

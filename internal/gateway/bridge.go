package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// AgentWait bounds how long a connection waits for a just-started
// workspace's supervisor to dial in.
const AgentWait = 30 * time.Second

// Tunnel accepts a supervisor's tunnel and serves it until it drops
// (GET /api/v1/environments/{id}/tunnel, for the environment's agent).
func (g *Gateway) Tunnel(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	if g.tunnels.Draining() {
		// Draining: the supervisor is to move to another replica. Refused
		// before the upgrade, so it backs off rather than redial at once.
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(g.log, w, r, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady,
			Message: "This server is shutting down", Details: "connect again: another replica takes the tunnel"})
		return
	}
	ws, err := accept(w, r)
	if err != nil {
		return // Accept has answered the client
	}
	// The request context ends with the connection; a server shutdown
	// closes it through the http.Server.
	conn := websocket.NetConn(r.Context(), ws, websocket.MessageBinary)
	if err := g.tunnels.Serve(r.Context(), env.ID, conn); err != nil {
		g.log.WarnContext(r.Context(), "tunnel", "environment", env.ID, "err", err)
	}
}

// RequireRunning refuses connections to an environment that is not running:
// there is nothing to connect to, and waiting would only hang the client.
func RequireRunning(env store.Environment) error {
	if env.Status != store.StatusRunning {
		return &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Environment is not running",
			Details: fmt.Sprintf("it is %s; start it first (POST /api/v1/environments/%s/start)", env.Status, env.ID)}
	}
	return nil
}

// accept upgrades r to a websocket. The Origin was checked before routing
// (httpmw.Auth.RefuseCrossOrigin, the one rule, which also admits the
// access URL's origin behind a proxy that rewrites Host), before anything
// was opened for the request: checking it again here, after a stream was
// opened, is what once let a refused handshake run its command.
func accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	return websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
}

// openStream opens a tunnel stream for h to the request's environment,
// before any websocket upgrade: a refusal (nothing on that port, not
// running) is then a plain HTTP error the client can show, not a websocket
// that closes at once. Everything that could refuse the upgrade is checked
// first, so a request that will not become a websocket opens nothing (a
// stream opens a shell, runs a terminal's command, connects to a port). On
// failure it has answered the request.
func (g *Gateway) openStream(w http.ResponseWriter, r *http.Request, h tunnel.Header) (net.Conn, bool) {
	env := httpmw.Environment(r)
	if err := httpmw.CheckWebsocketHandshake(r); err != nil {
		g.writeError(w, r, err)
		return nil, false
	}
	if err := RequireRunning(env); err != nil {
		g.writeError(w, r, err)
		return nil, false
	}
	dialCtx, cancel := context.WithTimeout(r.Context(), AgentWait)
	defer cancel()
	stream, err := g.tunnels.Dial(dialCtx, env.ID, h)
	if err != nil {
		g.writeError(w, r, StreamError(err))
		return nil, false
	}
	return stream, true
}

// bridge upgrades to a websocket and joins it to a tunnel stream for h.
func (g *Gateway) bridge(w http.ResponseWriter, r *http.Request, h tunnel.Header) {
	stream, ok := g.openStream(w, r, h)
	if !ok {
		return
	}
	ws, err := accept(w, r)
	if err != nil {
		stream.Close()
		return
	}
	tunnel.Join(websocket.NetConn(r.Context(), ws, websocket.MessageBinary), stream)
}

// StreamError explains why a workspace connection could not be made.
func StreamError(err error) error {
	var refused *tunnel.RefusedError
	switch {
	case errors.As(err, &refused):
		return &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeUnavailable, Message: "The workspace refused the connection", Details: refused.Reason}
	case errors.Is(err, tunnel.ErrNotConnected):
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable, Message: "The workspace is not reachable", Details: "its supervisor has not connected to the server; if this persists, stop and start the environment"}
	}
	return fmt.Errorf("open workspace stream: %w", err)
}

// SSH carries one SSH connection (dev8 ssh, or OpenSSH through
// `dev8 ssh --stdio` as ProxyCommand).
func (g *Gateway) SSH(w http.ResponseWriter, r *http.Request) {
	g.bridge(w, r, tunnel.Header{Service: tunnel.ServiceSSH})
}

// PortForward carries one TCP connection to a port on the workspace's
// loopback (?port=).
func (g *Gateway) PortForward(w http.ResponseWriter, r *http.Request) {
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		g.writeError(w, r, httpapi.Validation("port: must be an integer between 1 and 65535"))
		return
	}
	g.bridge(w, r, tunnel.Header{Service: tunnel.ServiceTCP, Port: port})
}

// Terminal is the web terminal (a pty): client text messages are tunnel.PTYInput JSON,
// server binary messages are terminal output. Reconnecting with the same
// id within the grace period resumes the same shell with its scrollback.
func (g *Gateway) Terminal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h := tunnel.Header{Service: tunnel.ServicePTY, Reconnect: q.Get("reconnect"), Command: q.Get("command")}
	if h.Reconnect == "" || len(h.Reconnect) > 128 {
		g.writeError(w, r, httpapi.Validation("reconnect: required, an id of at most 128 characters (a UUID) naming the terminal"))
		return
	}
	// The id is logged by the supervisor: the rule for names applies.
	if err := httpapi.CheckLabel("reconnect", h.Reconnect, 128); err != nil {
		g.writeError(w, r, err)
		return
	}
	for _, p := range []struct {
		name string
		dst  *uint16
		def  uint16
	}{{"width", &h.Width, 80}, {"height", &h.Height, 24}} {
		n, err := httpapi.IntParam(q.Get(p.name), p.name, int(p.def), 1, 1000)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		*p.dst = uint16(n)
	}
	stream, ok := g.openStream(w, r, h)
	if !ok {
		return
	}
	defer stream.Close()
	ws, err := accept(w, r)
	if err != nil {
		return
	}
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	// Terminal output → the browser, as binary messages. The handler does
	// not return before this goroutine has: closing the stream ends its
	// Read.
	done := make(chan struct{})
	defer func() {
		stop()
		stream.Close()
		<-done
	}()
	go func() {
		defer close(done)
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

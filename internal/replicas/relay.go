package replicas

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/tunnel"
)

// RelayPrefix is where a replica serves the others' relays: GET
// RelayPrefix + environment id, upgraded to a websocket. It is internal:
// no person's session or token opens it, only a relay credential.
const RelayPrefix = "/internal/v1/relay/"

// RelayPath is the relay endpoint for environmentID.
func RelayPath(environmentID string) string { return RelayPrefix + environmentID }

// Relayer is what the relay endpoint needs of this replica's tunnels
// (tunnel.Registry implements it).
type Relayer interface {
	Connected(environmentID string) bool
	ServeRelay(ctx context.Context, environmentID string, conn net.Conn) error
}

// maxIDLen bounds an environment id in a relay path.
const maxIDLen = 64

// RelayHandler serves other replicas' relays to the supervisors whose
// tunnels this replica holds. A request without a valid credential for
// this replica and its environment gets a 404, as an unknown route would,
// and nothing is opened; so does one for a tunnel that is not here (the
// caller looks again).
func (r *Replica) RelayHandler(tunnels Relayer) http.Handler {
	notFound := &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "No such route"}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		envID, ok := strings.CutPrefix(req.URL.Path, RelayPrefix)
		if !ok || req.Method != http.MethodGet || !validID(envID) {
			httpapi.WriteError(r.log, w, req, notFound)
			return
		}
		token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || r.tokens.verify(token, r.id, envID, r.cfg.Now()) != nil {
			// The credential is never logged.
			r.log.WarnContext(req.Context(), "replicas: relay refused: no valid credential", "environment", envID, "remote", req.RemoteAddr)
			httpapi.WriteError(r.log, w, req, notFound)
			return
		}
		if !tunnels.Connected(envID) {
			httpapi.WriteError(r.log, w, req, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound,
				Message: "The workspace's tunnel is not on this replica", Details: "its supervisor is connected elsewhere or not at all"})
			return
		}
		if err := httpmw.CheckWebsocketHandshake(req); err != nil {
			httpapi.WriteError(r.log, w, req, err)
			return
		}
		// Authenticated: the relay lasts as long as its stream.
		httpmw.LongLived(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ws, err := websocket.Accept(w, req, nil)
			if err != nil {
				return // Accept has answered
			}
			conn := websocket.NetConn(req.Context(), ws, websocket.MessageBinary)
			if err := tunnels.ServeRelay(req.Context(), envID, conn); err != nil && !errors.Is(err, tunnel.ErrNotHere) && req.Context().Err() == nil {
				r.log.WarnContext(req.Context(), "replicas: relay", "environment", envID, "err", err)
			}
		})).ServeHTTP(w, req)
	})
}

// validID accepts what store ids are made of.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

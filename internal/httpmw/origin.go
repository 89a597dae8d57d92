package httpmw

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"dev8.dev/dev8/internal/httpapi"
)

// errCrossSite refuses a browser request another site's page made: a
// state change or a websocket, whoever it would be for (signed in or not).
var errCrossSite = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "Cross-origin request refused",
	Details: "browsers may change state and open websockets here only from this server's own pages"}

// RefuseCrossOrigin is the one cross-origin rule of the whole router,
// applied before routing, authentication or anything a handler does:
//   - a request that may change state (any method but GET, HEAD, OPTIONS)
//     must not be a cross-origin browser request (CheckOrigin:
//     Sec-Fetch-Site, else Origin against Host; the access URL's origin and
//     the CORS origins are this server's). It covers the routes nobody is
//     signed in for — signup, login and whatever is added beside them — as
//     well as the signed-in ones, which the cookie's CSRF checks guard too;
//   - a websocket handshake (any request to switch protocols) is a GET that
//     changes state (it opens a shell, a port, the IDE): it must come from
//     this server's own origin (CheckWebsocketOrigin).
//
// Programs (the CLI, supervisors, scripts) send neither Origin nor
// Sec-Fetch-Site and pass.
func (a *Auth) RefuseCrossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		if isUpgrade(r) {
			// Any protocol switch, not only a well-formed websocket
			// handshake: the IDE's reverse proxy passes every kind on.
			err = a.cookies.CheckWebsocketOrigin(r)
		}
		if err == nil && !isSafeMethod(r.Method) {
			err = a.cookies.CheckOrigin(r)
		}
		if err != nil {
			a.writeError(w, r, errCrossSite)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CheckWebsocketOrigin refuses (ErrCrossOrigin) a websocket handshake
// whose Origin is not this server: its host must be the request's Host (as
// the websocket library checks) or the Origin must be the access URL's
// (behind a proxy that rewrites Host). CORS origins do not count: a
// websocket carries no CSRF token, so the cookie alone would let such a
// page open a terminal. No Origin at all is a program, not a browser.
func (c *Cookies) CheckWebsocketOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		if strings.EqualFold(u.Host, r.Host) {
			return nil
		}
		if own, err := NormalizeOrigin(c.PublicURL()); err == nil && strings.EqualFold(own, u.Scheme+"://"+u.Host) {
			return nil
		}
	}
	return ErrCrossOrigin
}

// CheckWebsocketHandshake says what is wrong with r as a websocket
// handshake (RFC 6455 §4.2.1, as github.com/coder/websocket checks it), or
// nil. Handlers that open something for the websocket (a shell, a port)
// call it first, so that a request the upgrade would refuse opens nothing.
// The Origin is RefuseCrossOrigin's.
func CheckWebsocketHandshake(r *http.Request) error {
	upgrade := func(details string) error {
		return &httpapi.Error{Status: http.StatusUpgradeRequired, Code: httpapi.CodeValidation, Message: "Websocket required", Details: details}
	}
	switch {
	case !r.ProtoAtLeast(1, 1):
		return upgrade("a websocket handshake must be HTTP/1.1 or later")
	case r.Method != http.MethodGet:
		return &httpapi.Error{Status: http.StatusMethodNotAllowed, Code: httpapi.CodeMethodNotAllowed, Message: "Method not allowed", Details: "a websocket handshake is a GET"}
	case !isUpgrade(r) || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return upgrade("this route is a websocket: send Connection: Upgrade and Upgrade: websocket")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return httpapi.Validation("Sec-WebSocket-Version: must be 13")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return httpapi.Validation("Sec-WebSocket-Key: send exactly one")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return httpapi.Validation("Sec-WebSocket-Key: must be 16 bytes in base64")
	}
	return nil
}

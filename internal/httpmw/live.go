package httpmw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/store"
)

// errCredentialGone answers a connection whose credential was revoked
// between the request's authentication and its registration.
var (
	errCredentialGone = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Credential revoked", Details: "log in again"}
	errRoleChanged    = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Role changed", Details: "an administrator changed this account's role; connect again"}
)

// credential is the session or API token a request authenticated with, as
// TrackLive needs it to register and re-check the connection.
type credential struct {
	name    string // liveconn.Session(id) or liveconn.Token(id)
	id      string
	hash    []byte
	session bool
	user    store.User
}

type credentialKey struct{}

func withCredential(ctx context.Context, c credential) context.Context {
	return context.WithValue(ctx, credentialKey{}, c)
}

// TrackLive registers the request, a connection that outlives it (an event
// stream, a websocket), in the live connection registry, and serves it
// under a context that ends when its credential is revoked or its user
// suspended or given another role: the handler's stream, websocket or
// proxied connection then closes. Requests authenticated otherwise (a
// workspace's agent) pass as they are: their tokens end with their run.
func (a *Auth) TrackLive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(credentialKey{}).(credential)
		if !ok || a.live == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx, done, err := a.live.Track(r.Context(), liveconn.Holder{UserID: c.user.ID, Credential: c.name, Check: a.checkCredential(c)})
		defer done()
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// TrackLiveWebsockets is TrackLive for websocket handshakes only, on
// routes that also serve plain requests (the IDE): those end by
// themselves and need no registration.
func (a *Auth) TrackLiveWebsockets(next http.Handler) http.Handler {
	tracked := a.TrackLive(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsWebsocketHandshake(r) {
			tracked.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TrackLiveApp is TrackLive on a workspace app's own origin (the IDE, a
// port's web server), whose requests authenticate with an app session
// (AppSession): a connection is held by the sign-in that session was made
// with (a dashboard session or an API token) and its user, so logging that
// out, revoking it, suspending the user or changing their role ends the
// app's websockets and streams with the rest. Every proxied request is
// registered, as any may stream; a websocket handshake is also checked
// against the store at once, the others at the sweeps.
func (a *Auth) TrackLiveApp(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ok := AppGrant(r)
		user, isUser := auth.UserFrom(r.Context())
		if !ok || !isUser || a.live == nil {
			next.ServeHTTP(w, r)
			return
		}
		name := liveconn.Token(g.Parent.ID)
		if g.Parent.Kind == appauth.ParentSession {
			name = liveconn.Session(g.Parent.ID)
		}
		h := liveconn.Holder{UserID: g.UserID, Credential: name, Check: a.checkAppGrant(g, user.Role)}
		if !IsWebsocketHandshake(r) {
			ctx, done := a.live.Register(r.Context(), h)
			defer done()
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		ctx, done, err := a.live.Track(r.Context(), h)
		defer done()
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// checkAppGrant is checkCredential for an app session's grant: its sign-in
// still valid, its user not suspended and with the role it had.
func (a *Auth) checkAppGrant(g appauth.Grant, role store.Role) func(context.Context) error {
	return func(ctx context.Context) error {
		user, err := a.appSignIn(ctx, g)
		switch {
		case errors.Is(err, errSignInGone):
			return errCredentialGone
		case err != nil:
			return fmt.Errorf("%w: %w", liveconn.ErrUnavailable, err)
		case user.SuspendedAt != nil:
			return ErrSuspended
		case user.Role != role:
			return errRoleChanged
		}
		return nil
	}
}

// checkCredential is the check a live connection's credential must pass
// when it is registered and at every sweep: still stored, not expired, its
// user not suspended and with the role it had.
func (a *Auth) checkCredential(c credential) func(context.Context) error {
	return func(ctx context.Context) error {
		var (
			id      string
			user    store.User
			expires time.Time
			err     error
		)
		if c.session {
			var s store.Session
			s, user, err = a.store.GetSessionByHash(ctx, c.hash)
			id, expires = s.ID, s.ExpiresAt
		} else {
			var tok store.APIToken
			tok, user, err = a.store.GetAPITokenByHash(ctx, c.hash)
			id, expires = tok.ID, tok.ExpiresAt
		}
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && id != c.id:
			return errCredentialGone
		case err != nil:
			return fmt.Errorf("%w: %w", liveconn.ErrUnavailable, err)
		case user.SuspendedAt != nil:
			return ErrSuspended
		case !expires.IsZero() && !a.now().Before(expires):
			return errCredentialGone
		case user.Role != c.user.Role:
			return errRoleChanged
		}
		return nil
	}
}

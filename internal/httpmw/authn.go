// Package httpmw is the middleware every Dev8 route runs behind: who the
// caller is (bearer tokens, the session cookie with its CSRF checks,
// workspace agents' tokens), what they may reach (RequireUser,
// RequireAgent, RequireAdmin, LoadEnvironment), the one cross-origin rule
// (RefuseCrossOrigin), throttles, caps on open streams, the request time
// bounds, allowed hosts, CORS, security headers, request logs and ids, panic
// recovery, body limits, the safe sign-in redirect (SafeNext), and the guard
// the web dashboard's pages use. The API, the gateway and the pages share
// it, so one rule decides who reaches what.
package httpmw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/store"
)

// tokenTouchEvery limits last-used writes to one per token per minute, so a
// busy client does not turn every read into a write.
const tokenTouchEvery = time.Minute

// AuthStore is what authentication reads and writes.
type AuthStore interface {
	GetAPITokenByHash(ctx context.Context, hash []byte) (store.APIToken, store.User, error)
	TouchAPIToken(ctx context.Context, id string, at time.Time) error
	GetSessionByHash(ctx context.Context, hash []byte) (store.Session, store.User, error)
	TouchSession(ctx context.Context, id string, seen, expires time.Time, ip string) error
	DeleteSession(ctx context.Context, userID, id string) error
	GetEnvironment(ctx context.Context, id string) (store.Environment, error)
	// GetSession and GetAPIToken look up the sign-in a workspace app's
	// session came from (AppSession).
	GetSession(ctx context.Context, id string) (store.Session, store.User, error)
	GetAPIToken(ctx context.Context, id string) (store.APIToken, store.User, error)
}

// AuthConfig configures Auth.
type AuthConfig struct {
	Store AuthStore
	// Agents verifies workspace supervisors' tokens.
	Agents *auth.AgentTokens
	// Live registers long-lived connections (TrackLive) so that revoking
	// their credential ends them; nil tracks nothing.
	Live *liveconn.Registry
	// Cookies are the session and CSRF cookies.
	Cookies *Cookies
	// Proxies tell the client's address (recorded when a session renews).
	Proxies TrustedProxies
	// SessionTTL is how long a session lasts after its last use.
	SessionTTL time.Duration
	Logger     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AppSessions checks the sessions of workspace apps' own origins
	// (AppSession); nil accepts none.
	AppSessions *appauth.Sessions
}

// Auth authenticates requests and loads what they name.
type Auth struct {
	store      AuthStore
	agents     *auth.AgentTokens
	live       *liveconn.Registry
	cookies    *Cookies
	proxies    TrustedProxies
	sessionTTL time.Duration
	log        *slog.Logger
	now        func() time.Time
	// appSessions: see AuthConfig.AppSessions.
	appSessions *appauth.Sessions
}

// NewAuth returns the authentication middleware for cfg.
func NewAuth(cfg AuthConfig) *Auth {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Auth{store: cfg.Store, agents: cfg.Agents, live: cfg.Live, cookies: cfg.Cookies, proxies: cfg.Proxies,
		sessionTTL: cfg.SessionTTL, log: cfg.Logger, now: cfg.Now, appSessions: cfg.AppSessions}
}

func (a *Auth) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(a.log, w, r, err)
}

var (
	errAuthRequired = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Authentication required", Details: "send Authorization: Bearer <token> (POST /api/v1/auth/login gives one), or log in from a browser"}
	errInvalidToken = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Invalid token"}
)

// Authenticate requires a credential and puts its user in the request's
// context: a bearer token (an API token, a session secret, or a workspace
// supervisor's agent token, which stands for its one environment and which
// routes that are not for agents refuse, see RequireUser), or the session
// cookie.
//
// A cookie is sent by the browser whoever made the page, so a request that
// changes state (any method but GET, HEAD and OPTIONS) with the cookie must
// also carry the session's CSRF token in X-CSRF-Token, and must not be a
// cross-origin browser request (http.CrossOriginProtection: Sec-Fetch-Site,
// else Origin against Host). Bearer requests need neither: a browser never
// adds an Authorization header by itself. Websocket handshakes are GETs:
// RefuseCrossOrigin, before routing, refuses one whose Origin is not this
// server.
func (a *Auth) Authenticate(next http.Handler) http.Handler {
	return a.authenticate(next, csrfToken)
}

// AuthenticateIDE is Authenticate for routes whose pages cannot send a CSRF
// token (the IDE under /w/, which is code-server's): the session cookie is
// accepted, and a state change with it must only not come from another
// origin.
func (a *Auth) AuthenticateIDE(next http.Handler) http.Handler {
	return a.authenticate(next, csrfOrigin)
}

// IsWebsocketHandshake reports whether r asks to become a websocket: a GET
// whose Connection and Upgrade headers (every line of them, as the
// websocket library reads them) hold "upgrade" and "websocket".
func IsWebsocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet && isUpgrade(r) && headerHasToken(r.Header, "Upgrade", "websocket")
}

// isUpgrade reports whether r asks to switch protocols (Connection:
// upgrade), to whatever protocol: a reverse proxy passes any such request
// on.
func isUpgrade(r *http.Request) bool { return headerHasToken(r.Header, "Connection", "upgrade") }

// headerHasToken reports whether any line of the comma-separated header key
// holds token.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (a *Auth) authenticate(next http.Handler, mode csrfMode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := auth.BearerToken(r.Header.Get("Authorization"))
		viaCookie := false
		if !ok {
			name := a.cookies.SessionCookieName(r)
			if planted := r.CookiesNamed(name); len(planted) > 1 {
				// Two session cookies: one was planted by a page on a
				// subdomain (a workspace app's origin under the
				// dashboard's host may set a cookie for its parent).
				// Which is whose cannot be told, so neither is used.
				a.cookies.ClearPlanted(w, r)
				a.writeError(w, r, errTwoSessions)
				return
			}
			if c, err := r.Cookie(name); err == nil && c.Value != "" {
				secret, ok, viaCookie = c.Value, true, true
			}
		}
		if !ok {
			a.writeError(w, r, errAuthRequired)
			return
		}
		switch {
		case strings.HasPrefix(secret, auth.SessionTokenPrefix):
			a.authenticateSession(w, r, secret, viaCookie, mode, next)
			return
		case viaCookie:
			// The cookie only ever holds a session secret.
			a.cookies.Clear(w, r)
			a.writeError(w, r, errInvalidSession)
			return
		case strings.HasPrefix(secret, auth.AgentTokenPrefix):
			a.authenticateAgent(w, r, secret, next)
			return
		}
		tok, user, err := a.store.GetAPITokenByHash(r.Context(), auth.HashToken(secret))
		if errors.Is(err, store.ErrNotFound) {
			a.writeError(w, r, errInvalidToken)
			return
		}
		if err != nil {
			a.writeError(w, r, fmt.Errorf("look up token: %w", err))
			return
		}
		if user.SuspendedAt != nil {
			a.writeError(w, r, ErrSuspended)
			return
		}
		now := a.now()
		if !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt) {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Token expired", Details: "log in again for a new token"})
			return
		}
		if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) >= tokenTouchEvery {
			if err := a.store.TouchAPIToken(r.Context(), tok.ID, now); err != nil {
				a.log.WarnContext(r.Context(), "record token use", "token", tok.ID, "err", err)
			}
		}
		ctx := withCredential(auth.WithAPIToken(auth.WithUser(r.Context(), user), tok.ID), credential{name: liveconn.Token(tok.ID), id: tok.ID, hash: tok.Hash, user: user})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticateAgent accepts a supervisor's token while it is its
// environment's current one: issued for this run, which every stop and
// start ends, and the token dies with the environment.
func (a *Auth) authenticateAgent(w http.ResponseWriter, r *http.Request, secret string, next http.Handler) {
	envID, ok := auth.AgentTokenEnvironment(secret)
	var env store.Environment
	if ok {
		var err error
		if env, err = a.store.GetEnvironment(r.Context(), envID); errors.Is(err, store.ErrNotFound) {
			ok = false
		} else if err != nil {
			a.writeError(w, r, fmt.Errorf("load agent's environment: %w", err))
			return
		}
	}
	if !ok || !a.agents.Verify(secret, env) {
		a.writeError(w, r, errInvalidToken)
		return
	}
	// The environment is loaded already: LoadEnvironment reuses it, so an
	// agent's report (the busiest request there is) costs one query.
	ctx := WithEnvironment(auth.WithAgent(r.Context(), envID), env)
	next.ServeHTTP(w, r.WithContext(ctx))
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

// tokenTouchEvery limits last-used writes to one per token per minute, so a
// busy client does not turn every read into a write.
const tokenTouchEvery = time.Minute

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// echoRequestID returns the request's id (the client's X-Request-Id, or one
// made here) so a user's report can be matched with the server's log.
func echoRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(middleware.RequestIDHeader, middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	})
}

func (a *API) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.ErrorContext(r.Context(), "panic serving request", "panic", v, "stack", string(debug.Stack()))
				a.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *API) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		a.log.InfoContext(r.Context(), "request",
			"request_id", middleware.GetReqID(r.Context()),
			"method", r.Method,
			"path", r.URL.Path,
			"status", ww.Status(),
			"bytes", ww.BytesWritten(),
			"duration", time.Since(start),
		)
	})
}

// SessionCookie carries a browser's session secret (HttpOnly). Every
// authenticated route accepts it; a request that changes state with it must
// also pass the CSRF checks (see authenticate).
const SessionCookie = "dev8_session"

// errSuspended answers every credential of a suspended user. It is a 401
// like any dead credential, with a message that tells the person why.
var errSuspended = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Account suspended", Details: "an administrator has suspended this account"}

var errAuthRequired = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Authentication required", Details: "send Authorization: Bearer <token> (POST /api/v1/auth/login gives one), or log in from a browser"}

// authenticate requires a credential and puts its user in the request's
// context: a bearer token (an API token, a session secret, or a workspace
// supervisor's agent token, which stands for its one environment and which
// routes that are not for agents refuse, see requireUser), or the session
// cookie.
//
// A cookie is sent by the browser whoever made the page, so a request that
// changes state (any method but GET, HEAD and OPTIONS) with the cookie must
// also carry the session's CSRF token in X-CSRF-Token, and must not be a
// cross-origin browser request (http.CrossOriginProtection: Sec-Fetch-Site,
// else Origin against Host). Bearer requests need neither: a browser never
// adds an Authorization header by itself. Websocket handshakes are GETs;
// the websocket library refuses one whose Origin is not this server.
func (a *API) authenticate(next http.Handler) http.Handler {
	return a.authenticateMode(next, csrfToken)
}

func isWebsocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		headerHasToken(r.Header.Get("Connection"), "upgrade")
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(v, token string) bool {
	for _, t := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// authenticateWith is authenticate for routes whose pages cannot send a
// CSRF token (the IDE, which is code-server's): with cookieOK the session
// cookie is accepted, and a state change with it must only not come from
// another origin. Without cookieOK only bearer tokens are.
func (a *API) authenticateWith(next http.Handler, cookieOK bool) http.Handler {
	if cookieOK {
		return a.authenticateMode(next, csrfOrigin)
	}
	return a.authenticateMode(next, bearerOnly)
}

func (a *API) authenticateMode(next http.Handler, mode csrfMode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := auth.BearerToken(r.Header.Get("Authorization"))
		viaCookie := false
		if !ok && mode != bearerOnly {
			if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
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
			a.clearSessionCookies(w, r)
			a.writeError(w, r, errInvalidSession)
			return
		case strings.HasPrefix(secret, auth.AgentTokenPrefix):
			a.authenticateAgent(w, r, secret, next)
			return
		}
		tok, user, err := a.store.GetAPITokenByHash(r.Context(), auth.HashToken(secret))
		if errors.Is(err, store.ErrNotFound) {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Invalid token"})
			return
		}
		if err != nil {
			a.writeError(w, r, fmt.Errorf("look up token: %w", err))
			return
		}
		if user.SuspendedAt != nil {
			a.writeError(w, r, errSuspended)
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
		next.ServeHTTP(w, r.WithContext(auth.WithUser(r.Context(), user)))
	})
}

// authenticateAgent accepts a supervisor's token while its environment
// exists: the token dies with it.
func (a *API) authenticateAgent(w http.ResponseWriter, r *http.Request, secret string, next http.Handler) {
	envID, ok := a.agents.Verify(secret)
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
	if !ok {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Invalid token"})
		return
	}
	// The environment is loaded already: loadEnvironment reuses it, so an
	// agent's report (the busiest request there is) costs one query.
	ctx := context.WithValue(auth.WithAgent(r.Context(), envID), environmentKey{}, env)
	next.ServeHTTP(w, r.WithContext(ctx))
}

// requireUser refuses agent tokens: they may only report for and connect
// their own workspace.
func (a *API) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.UserFrom(r.Context()); !ok {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "this route needs a user's token, not a workspace agent's"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAgent admits only a workspace's supervisor.
func (a *API) requireAgent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.AgentFrom(r.Context()); !ok {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "this route is for the workspace's supervisor"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type environmentKey struct{}

// loadEnvironment loads {id} for the caller. This is the one rule for who
// reaches an environment: its owner, an admin, or its own supervisor.
// Anything else is answered exactly like a missing environment, so ids
// cannot be probed.
func (a *API) loadEnvironment(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if agentEnvID, ok := auth.AgentFrom(r.Context()); ok {
			// An agent reaches only its own environment, which
			// authenticateAgent has loaded.
			if id != agentEnvID {
				a.writeError(w, r, httpapi.NotFound("Environment"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		env, err := a.store.GetEnvironment(r.Context(), id)
		user, isUser := auth.UserFrom(r.Context())
		if errors.Is(err, store.ErrNotFound) || (err == nil && !(isUser && auth.CanAccess(user, env.UserID))) {
			a.writeError(w, r, httpapi.NotFound("Environment"))
			return
		}
		if err != nil {
			a.writeError(w, r, fmt.Errorf("load environment: %w", err))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), environmentKey{}, env)))
	})
}

func environmentFrom(ctx context.Context) store.Environment {
	return ctx.Value(environmentKey{}).(store.Environment)
}

// mustUser returns the caller on routes behind authenticate; reaching it
// without one is a routing bug.
func mustUser(ctx context.Context) store.User {
	u, ok := auth.UserFrom(ctx)
	if !ok {
		panic("api: authenticated route reached without a user")
	}
	return u
}

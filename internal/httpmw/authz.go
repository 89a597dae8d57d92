package httpmw

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

var (
	errUserOnly  = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "this route needs a user's token, not a workspace agent's"}
	errAgentOnly = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "this route is for the workspace's supervisor"}
	errAdminOnly = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "this route is for admins"}
)

// RequireUser refuses agent tokens: they may only report for and connect
// their own workspace.
func (a *Auth) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.UserFrom(r.Context()); !ok {
			a.writeError(w, r, errUserOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireAgent admits only a workspace's supervisor.
func (a *Auth) RequireAgent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.AgentFrom(r.Context()); !ok {
			a.writeError(w, r, errAgentOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireAdmin admits only admins. Every admin-only route is gated with it
// at the router, so no handler has to remember the check.
func (a *Auth) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := auth.UserFrom(r.Context()); !ok || u.Role != store.RoleAdmin {
			a.writeError(w, r, errAdminOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type environmentKey struct{}

// WithEnvironment is ctx carrying env as LoadEnvironment leaves it (for
// handlers' tests, which skip the middleware).
func WithEnvironment(ctx context.Context, env store.Environment) context.Context {
	return context.WithValue(ctx, environmentKey{}, env)
}

// Environment is the environment LoadEnvironment loaded for r; reaching it
// on a route without LoadEnvironment is a routing bug.
func Environment(r *http.Request) store.Environment {
	env, ok := r.Context().Value(environmentKey{}).(store.Environment)
	if !ok {
		panic("httpmw: Environment on a route without LoadEnvironment")
	}
	return env
}

// LoadedEnvironment is the environment LoadEnvironment loaded for r, if
// the route has it.
func LoadedEnvironment(r *http.Request) (store.Environment, bool) {
	env, ok := r.Context().Value(environmentKey{}).(store.Environment)
	return env, ok
}

// LoadEnvironment loads {id} for the caller. This is the one rule for who
// reaches an environment: its owner, an admin, or its own supervisor.
// Anything else is answered exactly like a missing environment, so ids
// cannot be probed.
func (a *Auth) LoadEnvironment(next http.Handler) http.Handler {
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
		next.ServeHTTP(w, r.WithContext(WithEnvironment(r.Context(), env)))
	})
}

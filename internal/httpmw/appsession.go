package httpmw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

// AppRequest is what a request to a workspace app's own origin is for: the
// app its Host names, and the domain apps are served under.
type AppRequest struct {
	App    appurl.App
	Domain appurl.Domain
}

type appRequestKey struct{}

// WithAppRequest returns ctx for a request to app's origin.
func WithAppRequest(ctx context.Context, ar AppRequest) context.Context {
	return context.WithValue(ctx, appRequestKey{}, ar)
}

// AppRequestFrom is the app a request is for, if it came to an app's origin.
func AppRequestFrom(r *http.Request) (AppRequest, bool) {
	ar, ok := r.Context().Value(appRequestKey{}).(AppRequest)
	return ar, ok
}

type appGrantKey struct{}

// AppGrant is the grant the request's app session stands for (AppSession
// put it there).
func AppGrant(r *http.Request) (appauth.Grant, bool) {
	g, ok := r.Context().Value(appGrantKey{}).(appauth.Grant)
	return g, ok
}

var errAppSignIn = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Sign-in required",
	Details: "open this workspace app from the dashboard (its link signs this browser in to it); the dashboard's own session is not accepted here"}

// AppSession authenticates a request to a workspace app's origin
// (AppRequestFrom) by its own app session cookie, and nothing else: the
// dashboard's cookie never reaches this host, and a bearer token or an
// agent's is not taken either. The cookie must be this app's and signed by
// this server; the sign-in it was made with (a dashboard session or an API
// token) must still be valid, its person not suspended and still allowed
// the environment (its owner, or an admin); a browser's request that may
// change state or opens a websocket must come from the app's own pages or
// the same person's other apps (fromOwnPages). Then the user and the
// environment are in the context (auth.UserFrom, Environment), and a
// session in use has its cookie renewed now and then. A missing or dead
// session is 401, an environment that is gone (or, with a session, not the
// person's) 404.
func (a *Auth) AppSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ar, ok := AppRequestFrom(r)
		if !ok || a.appSessions == nil {
			a.writeError(w, r, errAppSignIn)
			return
		}
		grant, issued, ok := a.appCookie(r, ar.App)
		if !ok {
			a.refuseAppSignIn(w, r, ar.App)
			return
		}
		user, err := a.appSignIn(r.Context(), grant)
		if errors.Is(err, errSignInGone) {
			ClearAppCookie(w, r, ar.Domain)
			a.refuseAppSignIn(w, r, ar.App)
			return
		}
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if user.SuspendedAt != nil {
			ClearAppCookie(w, r, ar.Domain)
			a.writeError(w, r, ErrSuspended)
			return
		}
		env, err := a.store.GetEnvironment(r.Context(), ar.App.EnvironmentID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !auth.CanAccess(user, env.UserID)) {
			a.writeError(w, r, httpapi.NotFound("Environment"))
			return
		}
		if err != nil {
			a.writeError(w, r, fmt.Errorf("load environment: %w", err))
			return
		}
		if ok, err := a.fromOwnPages(r, ar, user); err != nil {
			a.writeError(w, r, err)
			return
		} else if !ok {
			a.writeError(w, r, errAppCrossOrigin)
			return
		}
		if a.appSessions.NeedsRenewal(issued) {
			value, expires := a.appSessions.Issue(grant)
			SetAppCookie(w, r, ar.Domain, value, expires)
		}
		ctx := WithEnvironment(auth.WithUser(r.Context(), user), env)
		ctx = context.WithValue(ctx, appGrantKey{}, grant)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

var errAppCrossOrigin = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "Cross-origin request refused",
	Details: "a request that changes something in a workspace app, or opens a websocket to it, must come from that app's own pages or another app of the same person's workspaces"}

// fromOwnPages reports whether a browser's request that may change state in
// the app (any method but GET, HEAD and OPTIONS) or opens a websocket to it
// comes from its own pages, or from another app of a workspace of the
// same person (a front end on one port calling its API on another). Apps'
// hosts under one registrable domain are all same-site, so a browser sends
// an app's SameSite=Lax cookie with a POST or a websocket from another
// workspace's page: without this, one member's page could act in another's
// IDE with that person's session. Requests without Origin or Sec-Fetch-Site
// are not a browser page's, and pass.
func (a *Auth) fromOwnPages(r *http.Request, ar AppRequest, user store.User) (bool, error) {
	if isSafeMethod(r.Method) && !IsWebsocketHandshake(r) {
		return true, nil
	}
	site := r.Header.Get("Sec-Fetch-Site")
	if site == "same-origin" || site == "none" {
		return true, nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return site == "", nil
	}
	if self, ok := ar.Domain.Origin(ar.App); ok && strings.EqualFold(origin, self) {
		return true, nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, ar.Domain.Scheme()) {
		return false, nil
	}
	other, ok := ar.Domain.Match(u.Host)
	if !ok {
		return false, nil
	}
	env, err := a.store.GetEnvironment(r.Context(), other.EnvironmentID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load the environment of the request's origin: %w", err)
	}
	return env.UserID == user.ID, nil
}

// refuseAppSignIn answers a request to app's origin without a valid
// session: 401 (a browser is then sent to the dashboard to sign in), or 404
// when the app's environment does not exist (any more), so a browser gets
// the 404 page on the app's own origin rather than a round trip to the
// dashboard. (Another person's existing workspace is told apart only by
// that redirect; the dashboard then answers 404 as for a missing one.)
func (a *Auth) refuseAppSignIn(w http.ResponseWriter, r *http.Request, app appurl.App) {
	_, err := a.store.GetEnvironment(r.Context(), app.EnvironmentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.writeError(w, r, httpapi.NotFound("Environment"))
	case err != nil:
		a.writeError(w, r, fmt.Errorf("load environment: %w", err))
	default:
		a.writeError(w, r, errAppSignIn)
	}
}

// appCookie is the first of the request's app session cookies that is a
// valid session for app. A page of another app under the same parent
// domain could plant a cookie of the same name there; it must not shadow
// this app's own.
func (a *Auth) appCookie(r *http.Request, app appurl.App) (appauth.Grant, time.Time, bool) {
	for _, c := range r.CookiesNamed(appauth.CookieName) {
		if g, issued, ok := a.appSessions.Verify(c.Value, app); ok {
			return g, issued, true
		}
	}
	return appauth.Grant{}, time.Time{}, false
}

// errSignInGone: the sign-in an app session was made with has ended.
var errSignInGone = errors.New("the sign-in has ended")

// appSignIn checks that the grant's sign-in is still valid and returns its
// user as the store has it now (role and suspension included).
func (a *Auth) appSignIn(ctx context.Context, g appauth.Grant) (store.User, error) {
	now := a.now()
	switch g.Parent.Kind {
	case appauth.ParentSession:
		sess, user, err := a.store.GetSession(ctx, g.Parent.ID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (!now.Before(sess.ExpiresAt) || sess.UserID != g.UserID)) {
			return store.User{}, errSignInGone
		}
		if err != nil {
			return store.User{}, fmt.Errorf("look up session: %w", err)
		}
		return user, nil
	case appauth.ParentToken:
		tok, user, err := a.store.GetAPIToken(ctx, g.Parent.ID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && ((!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) || tok.UserID != g.UserID)) {
			return store.User{}, errSignInGone
		}
		if err != nil {
			return store.User{}, fmt.Errorf("look up token: %w", err)
		}
		return user, nil
	}
	return store.User{}, errSignInGone
}

// appCookieSecure: over HTTPS, the app session cookie is sent only over
// HTTPS.
func appCookieSecure(r *http.Request, d appurl.Domain) bool { return r.TLS != nil || d.Secure() }

// SetAppCookie sets the app session cookie on the app's host: host-only
// (no Domain attribute, so neither the dashboard nor any other app's host
// ever gets it), HttpOnly, SameSite=Lax, Secure over HTTPS.
func SetAppCookie(w http.ResponseWriter, r *http.Request, d appurl.Domain, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     appauth.CookieName,
		Value:    value,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   appCookieSecure(r, d),
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearAppCookie tells the browser to forget the app session cookie.
func ClearAppCookie(w http.ResponseWriter, r *http.Request, d appurl.Domain) {
	http.SetCookie(w, &http.Cookie{
		Name:     appauth.CookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   appCookieSecure(r, d),
		SameSite: http.SameSiteLaxMode,
	})
}

// GuardPage runs a browser's navigation through guard before next: when
// the guard refuses (401, 403 or 404, written before next had a chance),
// onRefuse answers instead — a redirect to sign in, a 404 page — and the
// refusal's JSON is dropped. next's own statuses pass as they are.
func GuardPage(guard func(http.Handler) http.Handler, next http.Handler, onRefuse func(w http.ResponseWriter, r *http.Request, status int)) http.Handler {
	guarded := guard(passed(next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guarded.ServeHTTP(&pageRefusal{ResponseWriter: w, onRefuse: func(status int) { onRefuse(w, r, status) }}, r)
	})
}

package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/store"
)

// SessionStore is the persistence of browser sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s store.Session) (store.Session, error)
	GetSessionByHash(ctx context.Context, hash []byte) (store.Session, store.User, error)
	TouchSession(ctx context.Context, id string, seen, expires time.Time, ip string) error
	ListSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error)
	DeleteSession(ctx context.Context, userID, id string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

const (
	// CSRFCookie holds the session's CSRF token where the page's script can
	// read it (it is not HttpOnly); the token is also in the login answer
	// and in GET /auth/me. It is worth nothing without the session cookie.
	CSRFCookie = "dev8_csrf"
	// CSRFHeader is where a browser sends the CSRF token.
	CSRFHeader = "X-CSRF-Token"
	// sessionRenewEvery is how stale a session's last extension may grow
	// before a use extends it again: reads within the hour cost no write.
	sessionRenewEvery = time.Hour
	// DefaultSessionPruneInterval is how often expired sessions are deleted.
	DefaultSessionPruneInterval = time.Hour
	// maxUserAgentLength bounds the user agent a session keeps (bytes).
	maxUserAgentLength = 256
)

// authState is what sessions, CSRF checks and OAuth sign-in share.
type authState struct {
	csrf          *auth.CSRF
	crossOrigin   *http.CrossOriginProtection
	oauthStateKey []byte
	oauth         map[string]oauth.Provider
	oauthOrder    []string // as configured, for the sign-in buttons
	accessURL     atomic.Pointer[string]
}

// initAuth sets up sessions and OAuth from cfg. Without a SessionKey a
// random one is made: sessions still work, but CSRF tokens and sign-ins in
// progress do not survive a restart.
func (a *API) initAuth(cfg Config) {
	key := cfg.SessionKey
	if len(key) == 0 {
		key = make([]byte, auth.SessionKeySize)
		rand.Read(key)
	}
	a.csrf = auth.NewCSRF(key)
	a.crossOrigin = http.NewCrossOriginProtection()
	// Origins allowed to call the API from a browser (CORS) are not
	// cross-origin attackers; they still need a CSRF token to use a cookie.
	for o := range a.limits.corsOrigins {
		_ = a.crossOrigin.AddTrustedOrigin(o)
	}
	a.oauthStateKey = auth.DeriveKey(key, "oauth-state")
	a.oauth = map[string]oauth.Provider{}
	for _, p := range cfg.OAuthProviders {
		if _, dup := a.oauth[p.Name()]; !dup {
			a.oauthOrder = append(a.oauthOrder, p.Name())
		}
		a.oauth[p.Name()] = p
	}
}

// startSession creates a session for user, sets its cookies and returns the
// secret (for the answer body, once) with the session.
func (a *API) startSession(w http.ResponseWriter, r *http.Request, user store.User) (string, store.Session, error) {
	secret, hash, err := auth.NewSessionSecret()
	if err != nil {
		return "", store.Session{}, err
	}
	now := a.now()
	ua := truncateUTF8(r.UserAgent(), maxUserAgentLength)
	sess, err := a.store.CreateSession(r.Context(), store.Session{
		UserID:     user.ID,
		Hash:       hash,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(a.tokenTTL),
		IP:         a.clientIP(r),
		UserAgent:  ua,
	})
	if err != nil {
		return "", store.Session{}, fmt.Errorf("create session: %w", err)
	}
	a.setSessionCookies(w, r, secret, sess)
	return secret, sess, nil
}

// truncateUTF8 cuts s to at most n bytes of valid UTF-8, at a character
// boundary.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (a *API) clientIP(r *http.Request) string {
	if ip := a.limits.clientAddr(r); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// setSessionCookies sets the session cookie (HttpOnly: no script reads it)
// and the CSRF cookie (readable by the page, so it can send the token).
// Both are SameSite=Lax, so a cross-site form post does not carry them, and
// Secure when the request came over TLS or the access URL is https.
func (a *API) setSessionCookies(w http.ResponseWriter, r *http.Request, secret string, sess store.Session) {
	a.setSessionCookie(w, r, secret, sess.ExpiresAt)
	http.SetCookie(w, &http.Cookie{
		Name:     CSRFCookie,
		Value:    a.csrf.Token(sess.ID),
		Path:     "/",
		Expires:  sess.ExpiresAt,
		Secure:   a.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// setSessionCookie sets (or, on renewal, extends) the session cookie.
func (a *API) setSessionCookie(w http.ResponseWriter, r *http.Request, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    secret,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   a.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// secureCookies reports whether cookies must be Secure: when the request
// came over TLS, or when people reach the server over HTTPS (a proxy in
// front terminates TLS).
func (a *API) secureCookies(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	u := a.accessURL.Load()
	return u != nil && strings.HasPrefix(strings.ToLower(*u), "https://")
}

// clearSessionCookies tells the browser to forget both cookies.
func (a *API) clearSessionCookies(w http.ResponseWriter, r *http.Request) {
	for _, c := range []struct {
		name     string
		httpOnly bool
	}{{SessionCookie, true}, {CSRFCookie, false}} {
		http.SetCookie(w, &http.Cookie{
			Name:     c.name,
			Value:    "",
			Path:     "/",
			MaxAge:   -1,
			HttpOnly: c.httpOnly,
			Secure:   a.secureCookies(r),
			SameSite: http.SameSiteLaxMode,
		})
	}
}

var (
	errInvalidSession = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Invalid session", Details: "log in again"}
	errSessionExpired = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Session expired", Details: "log in again"}
	errCSRFToken      = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "CSRF check failed",
		Details: "a request authenticated by the session cookie must send the session's CSRF token in " + CSRFHeader + " (from the login answer, GET /api/v1/auth/me or the " + CSRFCookie + " cookie)"}
	errCrossOrigin = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "Cross-origin request refused",
		Details: "a request authenticated by the session cookie must come from this server's own pages"}
)

// csrfMode is what a cookie-authenticated request that changes state must
// show besides the cookie.
type csrfMode int

const (
	// bearerOnly: the cookie is not accepted at all.
	bearerOnly csrfMode = iota
	// csrfOrigin: the request must not come from another origin (the IDE,
	// whose own pages cannot send a token).
	csrfOrigin
	// csrfToken: the same, and it must carry the session's CSRF token (the
	// API).
	csrfToken
)

// isSafeMethod names the methods that must not change state and so need no
// CSRF check.
func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticateSession serves next as the session's user, or refuses.
func (a *API) authenticateSession(w http.ResponseWriter, r *http.Request, secret string, viaCookie bool, mode csrfMode, next http.Handler) {
	refuse := func(err error) {
		if viaCookie {
			a.clearSessionCookies(w, r)
		}
		a.writeError(w, r, err)
	}
	sess, user, err := a.store.GetSessionByHash(r.Context(), auth.HashToken(secret))
	if errors.Is(err, store.ErrNotFound) {
		refuse(errInvalidSession)
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("look up session: %w", err))
		return
	}
	if user.SuspendedAt != nil {
		refuse(errSuspended)
		return
	}
	now := a.now()
	if !now.Before(sess.ExpiresAt) {
		// Pruned here as well as by the periodic sweep.
		if err := a.store.DeleteSession(r.Context(), sess.UserID, sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.WarnContext(r.Context(), "delete expired session", "session", sess.ID, "err", err)
		}
		refuse(errSessionExpired)
		return
	}
	if viaCookie && !isSafeMethod(r.Method) {
		if err := a.crossOrigin.Check(r); err != nil {
			a.writeError(w, r, errCrossOrigin)
			return
		}
		if mode == csrfToken && !a.csrf.Verify(sess.ID, r.Header.Get(CSRFHeader)) {
			a.writeError(w, r, errCSRFToken)
			return
		}
	}
	if now.Sub(sess.LastSeenAt) >= sessionRenewEvery {
		expires := now.Add(a.tokenTTL)
		if err := a.store.TouchSession(r.Context(), sess.ID, now, expires, a.clientIP(r)); err != nil {
			a.log.WarnContext(r.Context(), "renew session", "session", sess.ID, "err", err)
		} else if viaCookie {
			// The cookie's own expiry slides with the session's.
			sess.ExpiresAt = expires
			a.setSessionCookie(w, r, secret, expires)
		}
	}
	ctx := auth.WithSession(auth.WithUser(r.Context(), user), auth.SessionInfo{ID: sess.ID, Cookie: viaCookie})
	next.ServeHTTP(w, r.WithContext(ctx))
}

type sessionJSON struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

// listSessions lists the caller's live sessions, the one in use marked:
// metadata only, never a secret.
func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	current, _ := auth.SessionFrom(r.Context())
	sessions, err := a.store.ListSessions(r.Context(), caller.ID, a.now())
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	out := make([]sessionJSON, len(sessions))
	for i, s := range sessions {
		out[i] = sessionJSON{ID: s.ID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, LastSeenAt: s.LastSeenAt,
			IP: s.IP, UserAgent: s.UserAgent, Current: s.ID == current.ID}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// deleteSession revokes one of the caller's sessions, at once. Another
// user's session is answered like a missing one.
func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	id := chi.URLParam(r, "id")
	err := a.store.DeleteSession(r.Context(), caller.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Session"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("revoke session: %w", err))
		return
	}
	if cur, ok := auth.SessionFrom(r.Context()); ok && cur.ID == id && cur.Cookie {
		a.clearSessionCookies(w, r)
	}
	a.log.InfoContext(r.Context(), "session revoked", "user", caller.ID, "session", id)
	a.audit(r, "session.revoke", "session", id, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Session revoked", "id": id})
}

// logout ends the session the request came with (cookie or bearer) and
// clears the cookies. An API token is not a session: revoke it with
// DELETE /api/v1/tokens/{id}.
func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	cur, ok := auth.SessionFrom(r.Context())
	if !ok {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeValidation, Message: "Not a session",
			Details: "this request used an API token; revoke it with DELETE /api/v1/tokens/{id}"})
		return
	}
	if err := a.store.DeleteSession(r.Context(), caller.ID, cur.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, fmt.Errorf("end session: %w", err))
		return
	}
	a.clearSessionCookies(w, r)
	a.log.InfoContext(r.Context(), "user logged out", "user", caller.ID, "session", cur.ID)
	a.audit(r, "auth.logout", "session", cur.ID, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Logged out"})
}

// RunSessionPruning deletes expired sessions every interval (default
// DefaultSessionPruneInterval) until ctx is done. Lookups refuse expired
// sessions anyway; this keeps the table from growing with abandoned ones.
func (a *API) RunSessionPruning(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSessionPruneInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.pruneSessions(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneSessions is one pass of RunSessionPruning.
func (a *API) pruneSessions(ctx context.Context) {
	n, err := a.store.DeleteExpiredSessions(ctx, a.now())
	switch {
	case err != nil && ctx.Err() == nil:
		a.log.WarnContext(ctx, "prune expired sessions", "err", err)
	case n > 0:
		a.log.InfoContext(ctx, "pruned expired sessions", "count", n)
	}
}

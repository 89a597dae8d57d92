package httpmw

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/store"
)

const (
	// SessionCookie carries a browser's session secret (HttpOnly). Every
	// authenticated route accepts it; a request that changes state with it
	// must also pass the CSRF checks (see Auth.Authenticate).
	SessionCookie = "dev8_session"
	// CSRFCookie holds the session's CSRF token where the page's script can
	// read it (it is not HttpOnly); the token is also in the login answer
	// and in GET /auth/me. It is worth nothing without the session cookie.
	CSRFCookie = "dev8_csrf"
	// SecurePrefix names both cookies when they are Secure (see
	// Cookies.SessionCookieName): "__Host-dev8_session", "__Host-dev8_csrf".
	SecurePrefix = "__Host-"
	// CSRFHeader is where a browser sends the CSRF token.
	CSRFHeader = "X-CSRF-Token"
	// sessionRenewEvery is how stale a session's last extension may grow
	// before a use extends it again: reads within the hour cost no write.
	sessionRenewEvery = time.Hour
)

var (
	// ErrSuspended answers every credential of a suspended user. It is a
	// 401 like any dead credential, with a message that tells the person
	// why.
	ErrSuspended = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Account suspended", Details: "an administrator has suspended this account"}
	// ErrCrossOrigin refuses a cookie request from another site's page.
	ErrCrossOrigin = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "Cross-origin request refused",
		Details: "a request authenticated by the session cookie must come from this server's own pages"}

	errTwoSessions = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Conflicting sessions",
		Details: "the browser sent two session cookies, one of them set by another site under this one (a workspace's page can do that); the other one has been cleared: reload, and sign in again if asked"}
	errInvalidSession = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Invalid session", Details: "log in again"}
	errSessionExpired = &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "Session expired", Details: "log in again"}
	errCSRFToken      = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeCSRFFailed, Message: "CSRF check failed",
		Details: "a request authenticated by the session cookie must send the session's CSRF token in " + CSRFHeader + " (from the login answer, GET /api/v1/auth/me or the " + CSRFCookie + " cookie)"}
)

// Cookies are the browser side of sessions: the two cookies, the CSRF
// tokens that go with them, and which origins count as this server's own.
// The login handlers set them; Auth checks them.
type Cookies struct {
	csrf        *auth.CSRF
	crossOrigin *http.CrossOriginProtection
	publicURL   atomic.Pointer[string]
}

// NewCookies signs CSRF tokens with sessionKey. Browser pages on
// corsOrigins (allowed to call the API, see CORS) are not cross-origin
// attackers; they still need a CSRF token to use a cookie.
func NewCookies(sessionKey []byte, corsOrigins []string) *Cookies {
	c := &Cookies{csrf: auth.NewCSRF(sessionKey), crossOrigin: http.NewCrossOriginProtection()}
	for o := range originSet(corsOrigins) {
		_ = c.crossOrigin.AddTrustedOrigin(o)
	}
	return c
}

// CSRFToken is the CSRF token of the session sessionID.
func (c *Cookies) CSRFToken(sessionID string) string { return c.csrf.Token(sessionID) }

// CheckOrigin refuses (ErrCrossOrigin) a browser request made by another
// site's page. Non-browser clients send no Origin or Sec-Fetch-Site and
// pass.
func (c *Cookies) CheckOrigin(r *http.Request) error {
	if err := c.crossOrigin.Check(r); err != nil {
		return ErrCrossOrigin
	}
	return nil
}

// SetPublicURL records where people reach the server (its access URL):
// cookies are Secure when it is https, and browser requests from its origin
// count as same-origin.
func (c *Cookies) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	c.publicURL.Store(&u)
	if o, err := NormalizeOrigin(u); err == nil {
		_ = c.crossOrigin.AddTrustedOrigin(o)
	}
}

// PublicURL is what SetPublicURL recorded ("" before).
func (c *Cookies) PublicURL() string {
	if u := c.publicURL.Load(); u != nil {
		return *u
	}
	return ""
}

// Secure reports whether cookies must be Secure: when the request came over
// TLS, or when people reach the server over HTTPS (a proxy in front
// terminates TLS).
func (c *Cookies) Secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(strings.ToLower(c.PublicURL()), "https://")
}

// SessionCookieName is the session cookie's name for r: over HTTPS (when
// Secure) "__Host-dev8_session", a name browsers take only from this very
// host, Secure, with Path=/ and no Domain, so no page on a subdomain (a
// workspace app's origin) can set one for the dashboard ("cookie
// tossing"), not even for a visitor who is signed out; a cookie of the
// plain name is then ignored. Plain HTTP has no such name (browsers refuse
// Secure cookies there): "dev8_session", and two of them are refused
// (Auth.Authenticate).
func (c *Cookies) SessionCookieName(r *http.Request) string {
	if c.Secure(r) {
		return SecurePrefix + SessionCookie
	}
	return SessionCookie
}

// CSRFCookieName is the CSRF cookie's name for r, prefixed as the session
// cookie's is.
func (c *Cookies) CSRFCookieName(r *http.Request) string {
	if c.Secure(r) {
		return SecurePrefix + CSRFCookie
	}
	return CSRFCookie
}

// Set sets the session cookie (HttpOnly: no script reads it) and the CSRF
// cookie (readable by the page, so it can send the token). Both are
// SameSite=Lax, so a cross-site form post does not carry them, and Secure
// when Secure says so.
func (c *Cookies) Set(w http.ResponseWriter, r *http.Request, secret string, sess store.Session) {
	c.setSession(w, r, secret, sess.ExpiresAt)
	http.SetCookie(w, &http.Cookie{
		Name:     c.CSRFCookieName(r),
		Value:    c.csrf.Token(sess.ID),
		Path:     "/",
		Expires:  sess.ExpiresAt,
		Secure:   c.Secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// setSession sets (or, on renewal, extends) the session cookie.
func (c *Cookies) setSession(w http.ResponseWriter, r *http.Request, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     c.SessionCookieName(r),
		Value:    secret,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   c.Secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// Clear tells the browser to forget both cookies.
func (c *Cookies) Clear(w http.ResponseWriter, r *http.Request) {
	for _, ck := range []struct {
		name     string
		httpOnly bool
	}{{c.SessionCookieName(r), true}, {c.CSRFCookieName(r), false}} {
		http.SetCookie(w, &http.Cookie{
			Name:     ck.name,
			Value:    "",
			Path:     "/",
			MaxAge:   -1,
			HttpOnly: ck.httpOnly,
			Secure:   c.Secure(r),
			SameSite: http.SameSiteLaxMode,
		})
	}
}

// ClearPlanted tells the browser to forget session and CSRF cookies that
// a page on a subdomain set for this host or a parent domain of it
// ("cookie tossing"): a workspace app's origin under the dashboard's host
// can do that, to have the dashboard take its owner's session for the
// visitor's. Such a cookie was sent with r, so its Domain is this host or a
// parent of it, and its Path a prefix of r's path: each combination is
// cleared. The dashboard's own cookies are host-only, which a Domain
// attribute does not name, and stay.
func (c *Cookies) ClearPlanted(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimSuffix(strings.ToLower(hostOnly(r.Host)), ".")
	if net.ParseIP(host) != nil {
		return // no cookie names an IP address's parent
	}
	var domains []string
	for d := host; strings.Contains(d, "."); d = d[strings.Index(d, ".")+1:] {
		domains = append(domains, d)
	}
	// "/a/b" is matched by cookies of Path /, /a, /a/, /a/b.
	paths := []string{"/"}
	for i := 1; i < len(r.URL.Path); i++ {
		if r.URL.Path[i] == '/' {
			paths = append(paths, r.URL.Path[:i], r.URL.Path[:i+1])
		}
	}
	if p := r.URL.Path; p != "/" && !strings.HasSuffix(p, "/") {
		paths = append(paths, p)
	}
	for _, name := range []string{SessionCookie, CSRFCookie} {
		for _, d := range domains {
			for _, p := range paths {
				http.SetCookie(w, &http.Cookie{Name: name, Value: "", Domain: d, Path: p, MaxAge: -1, Secure: c.Secure(r)})
			}
		}
	}
}

// csrfMode is what a cookie-authenticated request that changes state must
// show besides the cookie.
type csrfMode int

const (
	// csrfOrigin: the request must not come from another origin (the IDE,
	// whose own pages cannot send a token).
	csrfOrigin csrfMode = iota
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
func (a *Auth) authenticateSession(w http.ResponseWriter, r *http.Request, secret string, viaCookie bool, mode csrfMode, next http.Handler) {
	refuse := func(err error) {
		if viaCookie {
			a.cookies.Clear(w, r)
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
		refuse(ErrSuspended)
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
		if err := a.cookies.CheckOrigin(r); err != nil {
			a.writeError(w, r, err)
			return
		}
		if mode == csrfToken && !a.cookies.csrf.Verify(sess.ID, r.Header.Get(CSRFHeader)) {
			a.writeError(w, r, errCSRFToken)
			return
		}
	}
	if now.Sub(sess.LastSeenAt) >= sessionRenewEvery {
		expires := now.Add(a.sessionTTL)
		if err := a.store.TouchSession(r.Context(), sess.ID, now, expires, a.proxies.ClientIP(r)); err != nil {
			a.log.WarnContext(r.Context(), "renew session", "session", sess.ID, "err", err)
		} else if viaCookie {
			// The cookie's own expiry slides with the session's.
			sess.ExpiresAt = expires
			a.cookies.setSession(w, r, secret, expires)
		}
	}
	ctx := auth.WithSession(auth.WithUser(r.Context(), user), auth.SessionInfo{ID: sess.ID, Cookie: viaCookie})
	ctx = withCredential(ctx, credential{name: liveconn.Session(sess.ID), id: sess.ID, hash: sess.Hash, session: true, user: user})
	next.ServeHTTP(w, r.WithContext(ctx))
}

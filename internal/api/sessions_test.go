package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

type loginAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	SessionID string    `json:"session_id"`
	CSRFToken string    `json:"csrf_token"`
	User      sdk.User  `json:"user"`
}

// login logs in with a password and returns the answer and its cookies.
func (f *hardenedFixture) login(email, password string, tls bool) (loginAnswer, map[string]*http.Cookie) {
	f.t.Helper()
	rec := f.do("POST", "/api/v1/auth/login", reqOpts{body: `{"email":"` + email + `","password":"` + password + `"}`, tls: tls,
		headers: map[string]string{"User-Agent": "test-browser/1"}})
	if rec.Code != http.StatusOK {
		f.t.Fatalf("login = %d %s", rec.Code, rec.Body.String())
	}
	var out loginAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		f.t.Fatal(err)
	}
	return out, cookiesOf(rec)
}

func cookiesOf(rec *httptest.ResponseRecorder) map[string]*http.Cookie {
	m := map[string]*http.Cookie{}
	for _, c := range rec.Result().Cookies() {
		m[c.Name] = c
	}
	return m
}

func cookieHeader(secret string) map[string]string {
	return map[string]string{"Cookie": httpmw.SessionCookie + "=" + secret}
}

func withHeaders(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d (%s), want %d %s", rec.Code, rec.Body.String(), status, code)
	}
	if e := decodeError(t, rec); e.Code != code {
		t.Fatalf("error %+v, want code %s", e, code)
	}
}

func TestLoginStartsSession(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		f := newHardenedFixture(t, nil)
		u, _ := f.user("ada@example.com", "correct horse")
		login, cookies := f.login("ada@example.com", "correct horse", tls)
		now := f.clock.Now()
		if !strings.HasPrefix(login.Token, auth.SessionTokenPrefix) || login.User.ID != u.ID || login.CSRFToken == "" || login.SessionID == "" {
			t.Fatalf("login answer %+v", login)
		}
		if !login.ExpiresAt.Equal(now.Add(30 * 24 * time.Hour)) {
			t.Errorf("expires_at = %v, want 30 days from %v", login.ExpiresAt, now)
		}
		// Over TLS the cookies are __Host- ones, which no subdomain can
		// set.
		sessionName, csrfName := httpmw.SessionCookie, httpmw.CSRFCookie
		if tls {
			sessionName, csrfName = httpmw.SecurePrefix+sessionName, httpmw.SecurePrefix+csrfName
		}
		sc := cookies[sessionName]
		if sc == nil || sc.Value != login.Token || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure != tls || sc.Domain != "" {
			t.Fatalf("tls=%v: session cookie %+v (all: %v)", tls, sc, cookies)
		}
		if !sc.Expires.Equal(login.ExpiresAt.Truncate(time.Second)) {
			t.Errorf("cookie expires %v, session %v", sc.Expires, login.ExpiresAt)
		}
		cc := cookies[csrfName]
		if cc == nil || cc.Value != login.CSRFToken || cc.HttpOnly || cc.SameSite != http.SameSiteLaxMode || cc.Path != "/" || cc.Secure != tls || cc.Domain != "" {
			t.Fatalf("tls=%v: CSRF cookie %+v", tls, cc)
		}
		// A session, not an API token; the secret is stored hashed.
		if toks, _ := f.db.ListAPITokens(t.Context(), u.ID); len(toks) != 1 || toks[0].Name != "t" {
			t.Errorf("login made an API token: %+v", toks)
		}
		sess, owner, err := f.db.GetSessionByHash(t.Context(), auth.HashToken(login.Token))
		if err != nil || owner.ID != u.ID || sess.ID != login.SessionID || sess.UserAgent != "test-browser/1" || sess.IP != "192.0.2.1" {
			t.Fatalf("stored session %+v (user %s), %v", sess, owner.ID, err)
		}
	}
}

func TestSessionCookieAndCSRF(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	login, _ := f.login("ada@example.com", "correct horse", false)
	ck := cookieHeader(login.Token)

	// A read with the cookie alone works, and tells the page its token.
	rec := f.do("GET", "/api/v1/auth/me", reqOpts{headers: ck})
	if rec.Code != http.StatusOK {
		t.Fatalf("cookie GET /auth/me = %d %s", rec.Code, rec.Body.String())
	}
	var me struct {
		User      sdk.User `json:"user"`
		SessionID string   `json:"session_id"`
		CSRFToken string   `json:"csrf_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil || me.CSRFToken != login.CSRFToken || me.SessionID != login.SessionID {
		t.Fatalf("me = %+v, %v", me, err)
	}

	post := func(name string, headers map[string]string, token string) *httptest.ResponseRecorder {
		return f.do("POST", "/api/v1/tokens", reqOpts{body: `{"name":"` + name + `"}`, headers: headers, token: token})
	}
	// A state change with the cookie needs the session's token.
	wantError(t, post("a", ck, ""), http.StatusForbidden, httpapi.CodeCSRFFailed)
	wantError(t, post("a", withHeaders(ck, httpmw.CSRFHeader, "bogus"), ""), http.StatusForbidden, httpapi.CodeCSRFFailed)
	other, _ := f.login("ada@example.com", "correct horse", false)
	wantError(t, post("a", withHeaders(ck, httpmw.CSRFHeader, other.CSRFToken), ""), http.StatusForbidden, httpapi.CodeCSRFFailed)
	if rec := post("a", withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken), ""); rec.Code != http.StatusCreated {
		t.Fatalf("cookie POST with the CSRF token = %d %s", rec.Code, rec.Body.String())
	}
	// Even with the token, a browser request from another site is refused.
	wantError(t, post("b", withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken, "Sec-Fetch-Site", "cross-site"), ""), http.StatusForbidden, httpapi.CodeCSRFFailed)
	wantError(t, post("b", withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken, "Origin", "https://evil.example"), ""), http.StatusForbidden, httpapi.CodeCSRFFailed)
	if rec := post("b", withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken, "Sec-Fetch-Site", "same-origin"), ""); rec.Code != http.StatusCreated {
		t.Fatalf("same-origin cookie POST = %d %s", rec.Code, rec.Body.String())
	}
	// Bearer requests need no CSRF token: the session secret as a bearer
	// token (the CLI), and an API token.
	if rec := post("c", nil, login.Token); rec.Code != http.StatusCreated {
		t.Fatalf("bearer POST without CSRF token = %d %s", rec.Code, rec.Body.String())
	}
	var created struct{ Token string }
	json.Unmarshal(post("d", withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken), "").Body.Bytes(), &created)
	if rec := post("e", nil, created.Token); rec.Code != http.StatusCreated {
		t.Fatalf("API token POST = %d %s", rec.Code, rec.Body.String())
	}
	// The cookie carries sessions only, never an API token.
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{headers: cookieHeader(created.Token)}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	// Without any credential: 401 as before.
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")

	// From the browser: cookie plus CSRF token.
	login, _ := f.login("ada@example.com", "correct horse", false)
	ck := cookieHeader(login.Token)
	wantError(t, f.do("POST", "/api/v1/auth/logout", reqOpts{headers: ck}), http.StatusForbidden, httpapi.CodeCSRFFailed)
	rec := f.do("POST", "/api/v1/auth/logout", reqOpts{headers: withHeaders(ck, httpmw.CSRFHeader, login.CSRFToken)})
	if rec.Code != http.StatusOK {
		t.Fatalf("logout = %d %s", rec.Code, rec.Body.String())
	}
	cleared := cookiesOf(rec)
	for _, name := range []string{httpmw.SessionCookie, httpmw.CSRFCookie} {
		if c := cleared[name]; c == nil || c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("logout did not clear %s: %+v", name, c)
		}
	}
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{headers: ck}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{token: login.Token}), http.StatusUnauthorized, httpapi.CodeUnauthorized)

	// From the CLI: the secret as a bearer token.
	cli, _ := f.login("ada@example.com", "correct horse", false)
	if rec := f.do("POST", "/api/v1/auth/logout", reqOpts{token: cli.Token}); rec.Code != http.StatusOK {
		t.Fatalf("bearer logout = %d %s", rec.Code, rec.Body.String())
	}
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{token: cli.Token}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{headers: cookieHeader(cli.Token)}), http.StatusUnauthorized, httpapi.CodeUnauthorized)

	// An API token is not a session.
	_, apiToken := f.user("bob@example.com", "correct horse")
	wantError(t, f.do("POST", "/api/v1/auth/logout", reqOpts{token: apiToken}), http.StatusBadRequest, httpapi.CodeValidation)
}

func (f *hardenedFixture) sessions(token string) []sdk.Session {
	f.t.Helper()
	rec := f.do("GET", "/api/v1/auth/sessions", reqOpts{token: token})
	if rec.Code != http.StatusOK {
		f.t.Fatalf("GET /auth/sessions = %d %s", rec.Code, rec.Body.String())
	}
	var out struct{ Sessions []sdk.Session }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		f.t.Fatal(err)
	}
	return out.Sessions
}

func TestSessionSlidingExpiry(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	login, _ := f.login("ada@example.com", "correct horse", false)
	ttl := 30 * 24 * time.Hour
	expiry := func() time.Time {
		t.Helper()
		s := f.sessions(login.Token)
		if len(s) != 1 {
			t.Fatalf("sessions = %+v", s)
		}
		return s[0].ExpiresAt
	}
	first := expiry()
	// Within the hour a use does not write.
	f.clock.Advance(30 * time.Minute)
	if got := expiry(); !got.Equal(first) {
		t.Fatalf("expiry moved after 30 min: %v -> %v", first, got)
	}
	// After it, a use moves the expiry (and the cookie's) to a full TTL.
	f.clock.Advance(time.Hour)
	rec := f.do("GET", "/api/v1/auth/me", reqOpts{headers: cookieHeader(login.Token)})
	if rec.Code != http.StatusOK {
		t.Fatalf("me = %d", rec.Code)
	}
	want := f.clock.Now().Add(ttl)
	if c := cookiesOf(rec)[httpmw.SessionCookie]; c == nil || !c.Expires.Equal(want.Truncate(time.Second)) {
		t.Errorf("renewed cookie %+v, want expiry %v", c, want)
	}
	if got := expiry(); !got.Equal(want) {
		t.Fatalf("expiry after renewal = %v, want %v", got, want)
	}
	// So it outlives its first expiry…
	f.clock.Advance(ttl - time.Minute)
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: login.Token}); rec.Code != http.StatusOK {
		t.Fatalf("renewed session after its first expiry = %d", rec.Code)
	}
	// …but not a whole unused TTL.
	f.clock.Advance(ttl)
	rec = f.do("GET", "/api/v1/auth/me", reqOpts{headers: cookieHeader(login.Token)})
	wantError(t, rec, http.StatusUnauthorized, httpapi.CodeUnauthorized)
	if e := decodeError(t, rec); e.Error != "Session expired" {
		t.Errorf("expired session answered %+v", e)
	}
	if c := cookiesOf(rec)[httpmw.SessionCookie]; c == nil || c.MaxAge >= 0 {
		t.Errorf("a dead session's cookie was not cleared: %+v", c)
	}
	// The lookup pruned it.
	if _, _, err := f.db.GetSessionByHash(t.Context(), auth.HashToken(login.Token)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session still stored: %v", err)
	}
}

func TestSessionPruning(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	old, _ := f.login("ada@example.com", "correct horse", false)
	f.clock.Advance(31 * 24 * time.Hour)
	fresh, _ := f.login("ada@example.com", "correct horse", false)
	ctx := t.Context()
	f.api.pruneSessions(ctx)
	if _, _, err := f.db.GetSessionByHash(ctx, auth.HashToken(old.Token)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session survived pruning: %v", err)
	}
	if _, _, err := f.db.GetSessionByHash(ctx, auth.HashToken(fresh.Token)); err != nil {
		t.Fatalf("live session pruned: %v", err)
	}
}

func TestSuspendedUserSession(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("admin@example.com", "correct horse") // the first user, who must stay
	u, _ := f.user("ada@example.com", "correct horse")
	login, _ := f.login("ada@example.com", "correct horse", false)
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{headers: cookieHeader(login.Token)}); rec.Code != http.StatusOK {
		t.Fatalf("me = %d", rec.Code)
	}
	if _, _, err := f.db.UpdateManagedUser(t.Context(), u.ID, func(m *store.ManagedUser) error {
		at := f.clock.Now()
		m.SuspendedAt = &at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []reqOpts{{headers: cookieHeader(login.Token)}, {token: login.Token}} {
		rec := f.do("GET", "/api/v1/auth/me", o)
		wantError(t, rec, http.StatusUnauthorized, httpapi.CodeUnauthorized)
		if e := decodeError(t, rec); e.Error != "Account suspended" {
			t.Errorf("suspended answer %+v", e)
		}
	}
	// And no new session either.
	rec := f.do("POST", "/api/v1/auth/login", reqOpts{body: `{"email":"ada@example.com","password":"correct horse"}`})
	wantError(t, rec, http.StatusUnauthorized, httpapi.CodeUnauthorized)
	if _, ok := cookiesOf(rec)[httpmw.SessionCookie]; ok {
		t.Error("a suspended user's login set a cookie")
	}
}

func TestListAndRevokeSessions(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	f.user("bob@example.com", "correct horse")
	laptop, _ := f.login("ada@example.com", "correct horse", false)
	f.clock.Advance(2 * time.Hour)
	phone, _ := f.login("ada@example.com", "correct horse", false)
	bob, _ := f.login("bob@example.com", "correct horse", false)

	rec := f.do("GET", "/api/v1/auth/sessions", reqOpts{token: phone.Token})
	for _, secret := range []string{laptop.Token, phone.Token} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatal("the session list shows a secret")
		}
	}
	list := f.sessions(phone.Token)
	if len(list) != 2 || list[0].ID != phone.SessionID || !list[0].Current || list[1].ID != laptop.SessionID || list[1].Current || list[0].UserAgent != "test-browser/1" {
		t.Fatalf("sessions = %+v", list)
	}

	// Another user's session is answered like a missing one, and lives on.
	wantError(t, f.do("DELETE", "/api/v1/auth/sessions/"+bob.SessionID, reqOpts{token: phone.Token}), http.StatusNotFound, httpapi.CodeNotFound)
	wantError(t, f.do("DELETE", "/api/v1/auth/sessions/ses_missing", reqOpts{token: phone.Token}), http.StatusNotFound, httpapi.CodeNotFound)
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: bob.Token}); rec.Code != http.StatusOK {
		t.Fatalf("bob after ada's attempt = %d", rec.Code)
	}
	// Revoking one of one's own: it stops at once, the others go on.
	ck := cookieHeader(phone.Token)
	wantError(t, f.do("DELETE", "/api/v1/auth/sessions/"+laptop.SessionID, reqOpts{headers: ck}), http.StatusForbidden, httpapi.CodeCSRFFailed)
	if rec := f.do("DELETE", "/api/v1/auth/sessions/"+laptop.SessionID, reqOpts{headers: withHeaders(ck, httpmw.CSRFHeader, phone.CSRFToken)}); rec.Code != http.StatusOK {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body.String())
	}
	wantError(t, f.do("GET", "/api/v1/auth/me", reqOpts{token: laptop.Token}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	if l := f.sessions(phone.Token); len(l) != 1 || l[0].ID != phone.SessionID {
		t.Fatalf("sessions after revoke = %+v", l)
	}
}

func TestLoginRefusesCrossOriginBrowsers(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example.com"} })
	f.user("ada@example.com", "correct horse")
	body := `{"email":"ada@example.com","password":"correct horse"}`
	rec := f.do("POST", "/api/v1/auth/login", reqOpts{body: body, headers: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}})
	wantError(t, rec, http.StatusForbidden, httpapi.CodeCSRFFailed)
	if _, ok := cookiesOf(rec)[httpmw.SessionCookie]; ok {
		t.Fatal("a cross-site login set a session cookie")
	}
	for _, h := range []map[string]string{
		nil, // the CLI
		{"Sec-Fetch-Site": "same-origin"},
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example.com"}, // an allowed CORS origin
	} {
		if rec := f.do("POST", "/api/v1/auth/login", reqOpts{body: body, headers: h}); rec.Code != http.StatusOK {
			t.Errorf("login with %v = %d %s", h, rec.Code, rec.Body.String())
		}
	}
}

// Behind a proxy that terminates TLS the request is plain HTTP, but the
// access URL says people use HTTPS: the cookies are Secure (and __Host-)
// all the same, and a cookie of the plain name is someone else's.
func TestSessionCookiesSecureBehindTLSProxy(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.api.SetPublicURL("https://dev8.example.com/")
	f.user("ada@example.com", "correct horse")
	login, cookies := f.login("ada@example.com", "correct horse", false)
	for _, name := range []string{httpmw.SecurePrefix + httpmw.SessionCookie, httpmw.SecurePrefix + httpmw.CSRFCookie} {
		if c := cookies[name]; c == nil || !c.Secure {
			t.Errorf("%s = %+v, want Secure (all: %v)", name, c, cookies)
		}
	}
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{headers: map[string]string{"Cookie": httpmw.SecurePrefix + httpmw.SessionCookie + "=" + login.Token}}); rec.Code != http.StatusOK {
		t.Errorf("auth/me with the __Host- cookie: %d %s", rec.Code, rec.Body.String())
	}
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{headers: map[string]string{"Cookie": httpmw.SessionCookie + "=" + login.Token}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("auth/me with a plain-named cookie behind TLS: %d, want 401", rec.Code)
	}
}

// The IDE's pages (code-server's) cannot send a CSRF token, so routes under
// /w/ take the cookie with the cross-origin check alone.
func TestIDERoutesCheckOriginOnly(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	login, _ := f.login("ada@example.com", "correct horse", false)
	ck := cookieHeader(login.Token)
	wantError(t, f.do("POST", "/w/env_missing/activity", reqOpts{headers: withHeaders(ck, "Sec-Fetch-Site", "cross-site")}), http.StatusForbidden, httpapi.CodeCSRFFailed)
	// Same origin, no token: past authentication (to the environment
	// lookup, which finds nothing).
	wantError(t, f.do("POST", "/w/env_missing/activity", reqOpts{headers: withHeaders(ck, "Sec-Fetch-Site", "same-origin")}), http.StatusNotFound, httpapi.CodeNotFound)
}

// TestPlantedSessionCookie: a page on a subdomain of the dashboard's host
// (a workspace app's origin under it) can set a session cookie for the
// parent domain, so that the dashboard would take its owner's session for
// the visitor's. A request with two session cookies uses neither, and the
// planted one is cleared (it has a Domain attribute; the dashboard's own
// host-only cookie stays).
func TestPlantedSessionCookie(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.user("ada@example.com", "correct horse")
	f.user("mallory@example.com", "correct horse")
	ada, _ := f.login("ada@example.com", "correct horse", false)
	mallory, _ := f.login("mallory@example.com", "correct horse", false)

	const me = "http://dev8.example.com/api/v1/auth/me"
	rec := f.do("GET", me, reqOpts{headers: map[string]string{"Cookie": httpmw.SessionCookie + "=" + mallory.Token + "; " + httpmw.SessionCookie + "=" + ada.Token}})
	wantError(t, rec, http.StatusUnauthorized, httpapi.CodeUnauthorized)
	if e := decodeError(t, rec); e.Error != "Conflicting sessions" {
		t.Errorf("error %+v", e)
	}
	cleared := map[string]bool{}
	for _, c := range rec.Result().Cookies() {
		if c.Name == httpmw.SessionCookie {
			if c.Domain == "" {
				t.Errorf("the dashboard's own cookie was cleared: %+v", c)
			}
			if c.MaxAge >= 0 || c.Value != "" {
				t.Errorf("not a clearing cookie: %+v", c)
			}
			cleared[c.Domain+c.Path] = true
		}
	}
	for _, want := range []string{"dev8.example.com/", "example.com/", "dev8.example.com/api", "dev8.example.com/api/", "example.com/api/v1", "dev8.example.com/api/v1/auth/", "dev8.example.com/api/v1/auth/me"} {
		if !cleared[want] {
			t.Errorf("no clearing cookie for Domain and Path %s (cleared: %v)", want, cleared)
		}
	}
	// One cookie, the visitor's own: as ever.
	rec = f.do("GET", me, reqOpts{headers: cookieHeader(ada.Token)})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ada@example.com") {
		t.Errorf("ada's own cookie: %d %s", rec.Code, rec.Body.String())
	}
}

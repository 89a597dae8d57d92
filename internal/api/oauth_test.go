package api

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// fakePerson is who signs in at the fake provider.
type fakePerson struct {
	sub, name, email string
	verified         bool
	// githubSecondary is another address GitHub lists, verified but not
	// primary: it must never be used.
	githubSecondary string
}

type fakeGrant struct {
	clientID, redirectURI, challenge string
	person                           fakePerson
}

// fakeProvider is just enough of GitHub (authorize, token, /user,
// /user/emails) and of an OpenID Connect issuer (discovery, JWKS, ID tokens)
// for sign-in, on 127.0.0.1. Its token endpoint checks the PKCE verifier.
type fakeProvider struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey

	mu             sync.Mutex
	person         fakePerson // who the next authorization is for
	grants         map[string]fakeGrant
	tokens         map[string]fakePerson
	challenges     []string // code_challenge_method of each authorization
	pkceMismatches int
}

const (
	fakeClientID     = "dev8-client"
	fakeClientSecret = "dev8-secret"
)

func newFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProvider{t: t, key: key, grants: map[string]fakeGrant{}, tokens: map[string]fakePerson{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	// GitHub's paths for the same.
	mux.HandleFunc("GET /login/oauth/authorize", p.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", p.token)
	mux.HandleFunc("GET /api/user", p.user)
	mux.HandleFunc("GET /api/user/emails", p.emails)
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) signInAs(person fakePerson) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.person = person
}

func randomString() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *fakeProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != fakeClientID || q.Get("response_type") != "code" || q.Get("state") == "" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.challenges = append(p.challenges, q.Get("code_challenge_method"))
	code := randomString()
	p.grants[code] = fakeGrant{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), person: p.person}
	p.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (p *fakeProvider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != fakeClientID || secret != fakeClientSecret {
		tokenError(w, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	code := r.PostForm.Get("code")
	g, ok := p.grants[code]
	delete(p.grants, code) // single use
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != g.redirectURI {
		tokenError(w, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		p.pkceMismatches++
		tokenError(w, "invalid_grant")
		return
	}
	access := randomString()
	p.tokens[access] = g.person
	out := map[string]any{"access_token": access, "token_type": "bearer", "expires_in": 3600,
		"id_token": p.idToken(g.person)}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (p *fakeProvider) bearer(w http.ResponseWriter, r *http.Request) (fakePerson, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	person, ok := p.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
	}
	return person, ok
}

func (p *fakeProvider) user(w http.ResponseWriter, r *http.Request) {
	person, ok := p.bearer(w, r)
	if !ok {
		return
	}
	var id int64
	fmt.Sscan(person.sub, &id)
	json.NewEncoder(w).Encode(map[string]any{"id": id, "login": strings.ReplaceAll(strings.ToLower(person.name), " ", ""), "name": person.name})
}

func (p *fakeProvider) emails(w http.ResponseWriter, r *http.Request) {
	person, ok := p.bearer(w, r)
	if !ok {
		return
	}
	list := []map[string]any{{"email": person.email, "primary": true, "verified": person.verified}}
	if person.githubSecondary != "" {
		list = append(list, map[string]any{"email": person.githubSecondary, "primary": false, "verified": true})
	}
	json.NewEncoder(w).Encode(list)
}

func (p *fakeProvider) discovery(w http.ResponseWriter, r *http.Request) {
	u := p.srv.URL
	json.NewEncoder(w).Encode(map[string]any{
		"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token", "jwks_uri": u + "/jwks",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (p *fakeProvider) jwks(w http.ResponseWriter, r *http.Request) {
	pub := p.key.PublicKey
	json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// idToken is an RS256 JWT for person, valid for an hour of real time (the
// verifier reads the real clock).
func (p *fakeProvider) idToken(person fakePerson) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now()
	signing := enc(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": p.srv.URL, "sub": person.sub, "aud": fakeClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": person.email, "email_verified": person.verified, "name": person.name,
	})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		p.t.Error(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// oauthFixture is the API behind a real loopback server, signing in with
// both providers at one fake.
type oauthFixture struct {
	*hardenedFixture
	url      string
	provider *fakeProvider
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	return newOAuthFixtureWith(t, nil)
}

// newOAuthFixtureWith is newOAuthFixture with mutate applied to the API's
// configuration last.
func newOAuthFixtureWith(t *testing.T, mutate func(*Config)) *oauthFixture {
	t.Helper()
	fake := newFakeProvider(t)
	gh, err := oauth.NewGitHub(oauth.GitHubConfig{ClientID: fakeClientID, ClientSecret: fakeClientSecret, URL: fake.srv.URL, APIURL: fake.srv.URL + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	google, err := oauth.NewGoogle(oauth.GoogleConfig{ClientID: fakeClientID, ClientSecret: fakeClientSecret, Issuer: fake.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	f := newHardenedFixture(t, func(c *Config) {
		c.OAuthProviders = []oauth.Provider{gh, google}
		c.RateLimits = httpmw.RateLimits{IPRate: -1, PrincipalRate: -1}
		if mutate != nil {
			mutate(c)
		}
	})
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	return &oauthFixture{hardenedFixture: f, url: srv.URL, provider: fake}
}

// browser is a client with a cookie jar that follows redirects until it is
// sent to a page outside the sign-in routes (the next path).
func (f *oauthFixture) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), f.url) && !strings.HasPrefix(req.URL.Path, "/api/v1/auth/oauth/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// signIn runs a whole sign-in in browser and returns the final answer.
func (f *oauthFixture) signIn(browser *http.Client, provider, next string) *http.Response {
	f.t.Helper()
	u := f.url + "/api/v1/auth/oauth/" + provider
	if next != "" {
		u += "?next=" + url.QueryEscape(next)
	}
	resp, err := browser.Get(u)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// me asks who the browser's session cookie belongs to (0 status: it has
// none).
func (f *oauthFixture) me(browser *http.Client) (int, map[string]any) {
	f.t.Helper()
	resp, err := browser.Get(f.url + "/api/v1/auth/me")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func userIDOf(me map[string]any) string {
	u, _ := me["user"].(map[string]any)
	id, _ := u["id"].(string)
	return id
}

func wantOAuthError(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	var e sdk.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != status || e.Code != httpapi.CodeOAuthFailed {
		t.Fatalf("answer %d %+v, want %d %s", resp.StatusCode, e, status, httpapi.CodeOAuthFailed)
	}
}

func TestOAuthSignIn(t *testing.T) {
	t.Parallel()
	f := newOAuthFixture(t)
	ctx := t.Context()
	ada := fakePerson{sub: "1001", name: "Ada Lovelace", email: "Ada@Example.com", verified: true}

	// The providers are listed for the sign-in page.
	resp, err := http.Get(f.url + "/api/v1/auth/providers")
	if err != nil {
		t.Fatal(err)
	}
	var providers sdk.SignupInfo
	json.NewDecoder(resp.Body).Decode(&providers)
	resp.Body.Close()
	if len(providers.Providers) != 2 || providers.Providers[0].Name != "github" || providers.Providers[1].Name != "google" ||
		providers.Providers[0].StartURL != "/api/v1/auth/oauth/github" || providers.Providers[1].DisplayName != "Google" {
		t.Fatalf("providers = %+v", providers)
	}

	// A new person: a user is made (the first, so an admin), linked, and
	// signed in, and the browser goes where it asked.
	f.provider.signInAs(ada)
	b := f.browser()
	resp = f.signIn(b, "github", "/environments?tab=mine")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/environments?tab=mine" {
		t.Fatalf("sign-in ended with %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, me := f.me(b)
	if code != http.StatusOK {
		t.Fatalf("me after sign-in = %d %v", code, me)
	}
	adaID := userIDOf(me)
	user, err := f.db.GetUser(ctx, adaID)
	if err != nil || user.Email != "ada@example.com" || user.Name != "Ada Lovelace" || user.Role != store.RoleAdmin || user.PasswordHash != "" {
		t.Fatalf("created user %+v, %v", user, err)
	}
	if _, owner, err := f.db.GetAccount(ctx, "github", "1001"); err != nil || owner.ID != adaID {
		t.Fatalf("github account → %s, %v", owner.ID, err)
	}
	if accts, _ := me["accounts"].([]any); len(accts) != 1 {
		t.Errorf("me lists accounts %v", me["accounts"])
	}
	// The session cookie is a real session, with CSRF like any other.
	if me["csrf_token"] == "" || me["session_id"] == "" {
		t.Errorf("me has no CSRF token: %v", me)
	}
	f.provider.mu.Lock()
	for _, m := range f.provider.challenges {
		if m != "S256" {
			t.Errorf("code_challenge_method %q, want S256", m)
		}
	}
	f.provider.mu.Unlock()

	// Signing in again (another browser) is the same user.
	b2 := f.browser()
	if resp := f.signIn(b2, "github", ""); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Fatalf("second sign-in %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, me := f.me(b2); userIDOf(me) != adaID {
		t.Fatalf("second sign-in is user %s, want %s", userIDOf(me), adaID)
	}

	// An existing password user is linked by their verified email.
	bob, _ := f.user("bob@example.com", "correct horse")
	f.provider.signInAs(fakePerson{sub: "google-bob", name: "Bob", email: "bob@example.com", verified: true})
	b3 := f.browser()
	if resp := f.signIn(b3, "google", "/x"); resp.StatusCode != http.StatusFound {
		t.Fatalf("google sign-in = %d", resp.StatusCode)
	}
	if _, me := f.me(b3); userIDOf(me) != bob.ID {
		t.Fatalf("google sign-in is user %s, want bob %s", userIDOf(me), bob.ID)
	}
	if u, _ := f.db.GetUser(ctx, bob.ID); u.PasswordHash == "" || u.Role != store.RoleMember {
		t.Errorf("linking changed bob: %+v", u)
	}
}

func TestOAuthUnverifiedEmailNotLinked(t *testing.T) {
	t.Parallel()
	f := newOAuthFixture(t)
	ctx := t.Context()
	carol, _ := f.user("carol@example.com", "correct horse")

	for _, tc := range []struct {
		provider string
		person   fakePerson
	}{
		// Google vouches for the address but not that it is carol's.
		{"google", fakePerson{sub: "g-mallory", name: "Mallory", email: "carol@example.com", verified: false}},
		// GitHub: the primary address is unverified; a verified secondary
		// one does not stand in for it.
		{"github", fakePerson{sub: "666", name: "Mallory", email: "carol@example.com", verified: false, githubSecondary: "carol@example.com"}},
	} {
		f.provider.signInAs(tc.person)
		b := f.browser()
		wantOAuthError(t, f.signIn(b, tc.provider, ""), http.StatusForbidden)
		if _, _, err := f.db.GetAccount(ctx, tc.provider, tc.person.sub); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: an unverified email was linked: %v", tc.provider, err)
		}
		if code, _ := f.me(b); code != http.StatusUnauthorized {
			t.Errorf("%s: the browser is signed in (%d)", tc.provider, code)
		}
	}
	if accts, _ := f.db.ListAccounts(ctx, carol.ID); len(accts) != 0 {
		t.Errorf("carol has accounts %+v", accts)
	}
}

// start begins a sign-in in browser without following it to the provider
// and returns the authorization URL the browser was sent to.
func (f *oauthFixture) start(browser *http.Client, provider string) *url.URL {
	f.t.Helper()
	c := *browser
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(f.url + "/api/v1/auth/oauth/" + provider)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), f.provider.srv.URL) {
		f.t.Fatalf("start = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}

// authorize has the fake provider authorize u and returns its code.
func (f *oauthFixture) authorize(u *url.URL) (code, state string) {
	f.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u.String())
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" {
		f.t.Fatalf("authorize → %q", resp.Header.Get("Location"))
	}
	return back.Query().Get("code"), back.Query().Get("state")
}

func (f *oauthFixture) callback(browser *http.Client, provider, code, state string) *http.Response {
	f.t.Helper()
	resp, err := browser.Get(f.url + "/api/v1/auth/oauth/" + provider + "/callback?code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(state))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestOAuthStateAndPKCE(t *testing.T) {
	t.Parallel()
	f := newOAuthFixture(t)
	ctx := t.Context()
	f.provider.signInAs(fakePerson{sub: "2002", name: "Eve", email: "eve@example.com", verified: true})
	noUsers := func(when string) {
		t.Helper()
		if _, err := f.db.GetUserByEmail(ctx, "eve@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: a user was created (%v)", when, err)
		}
	}

	// A forged state: the browser started a sign-in, but the answer
	// carries another state.
	b := f.browser()
	code, _ := f.authorize(f.start(b, "github"))
	wantOAuthError(t, f.callback(b, "github", code, "forged"), http.StatusForbidden)
	noUsers("forged state")
	// No state at all.
	b = f.browser()
	code, _ = f.authorize(f.start(b, "github"))
	wantOAuthError(t, f.callback(b, "github", code, ""), http.StatusForbidden)
	noUsers("missing state")
	// A browser that never started a sign-in (login CSRF: an attacker's
	// code and state sent to a victim).
	code, state := f.authorize(f.start(f.browser(), "github"))
	wantOAuthError(t, f.callback(f.browser(), "github", code, state), http.StatusBadRequest)
	noUsers("no state cookie")
	// The state is for another provider.
	b = f.browser()
	code, state = f.authorize(f.start(b, "github"))
	wantOAuthError(t, f.callback(b, "google", code, state), http.StatusForbidden)
	noUsers("other provider")

	// PKCE: the victim's browser holds a genuine state, and an attacker
	// injects a code issued for their own sign-in (another verifier). The
	// state matches, but the provider refuses the verifier.
	victim, attacker := f.browser(), f.browser()
	victimAuth := f.start(victim, "github")
	attackerCode, _ := f.authorize(f.start(attacker, "github"))
	wantOAuthError(t, f.callback(victim, "github", attackerCode, victimAuth.Query().Get("state")), http.StatusForbidden)
	noUsers("wrong verifier")
	f.provider.mu.Lock()
	mismatches := f.provider.pkceMismatches
	f.provider.mu.Unlock()
	if mismatches != 1 {
		t.Fatalf("the provider saw %d PKCE mismatches, want 1", mismatches)
	}
	// The verifier never left the server; only its challenge did.
	if victimAuth.Query().Get("code_verifier") != "" || victimAuth.Query().Get("code_challenge") == "" {
		t.Fatalf("authorization URL %s", victimAuth)
	}

	// The state is single-use: the cookie is cleared by the first answer.
	b = f.browser()
	code, state = f.authorize(f.start(b, "github"))
	if resp := f.callback(b, "github", code, state); resp.StatusCode != http.StatusFound {
		t.Fatalf("genuine callback = %d", resp.StatusCode)
	}
	code2, _ := f.authorize(f.start(f.browser(), "github"))
	wantOAuthError(t, f.callback(b, "github", code2, state), http.StatusBadRequest)
}

func TestOAuthUnknownProvider(t *testing.T) {
	t.Parallel()
	f := newOAuthFixture(t)
	for _, p := range []string{"/api/v1/auth/oauth/gitlab", "/api/v1/auth/oauth/gitlab/callback?code=x&state=y"} {
		resp, err := http.Get(f.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestOAuthSuspendedUserRefused(t *testing.T) {
	t.Parallel()
	f := newOAuthFixture(t)
	ctx := t.Context()
	f.user("admin@example.com", "correct horse") // the admin who must stay
	dave, _ := f.user("dave@example.com", "correct horse")
	if _, _, err := f.db.UpdateManagedUser(ctx, dave.ID, func(m *store.ManagedUser) error {
		at := f.clock.Now()
		m.SuspendedAt = &at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.provider.signInAs(fakePerson{sub: "4004", name: "Dave", email: "dave@example.com", verified: true})
	b := f.browser()
	resp := f.signIn(b, "github", "")
	var e sdk.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusUnauthorized || e.Error != "Account suspended" {
		t.Fatalf("suspended sign-in = %d %+v, want 401 Account suspended", resp.StatusCode, e)
	}
	if code, _ := f.me(b); code != http.StatusUnauthorized {
		t.Errorf("the suspended user's browser is signed in (%d)", code)
	}
	if _, _, err := f.db.GetAccount(ctx, "github", "4004"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an account was linked to a suspended user: %v", err)
	}
}

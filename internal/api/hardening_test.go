package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/testclock"
	"dev8.dev/dev8/sdk"
)

// hardenedFixture is the real router on a SQLite store, with a clock the
// test moves.
type hardenedFixture struct {
	t       *testing.T
	api     *API
	handler http.Handler
	db      *store.DB
	clock   *testclock.Clock
	agents  *auth.AgentTokens
}

func newHardenedFixture(t *testing.T, mutate func(*Config)) *hardenedFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := testclock.At(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	agents := auth.NewAgentTokens(bytes.Repeat([]byte{7}, auth.AgentKeySize))
	cfg := Config{
		Store:       db,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:         clk.Now,
		BcryptCost:  auth.MinBcryptCost,
		AgentTokens: agents,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a := New(cfg)
	return &hardenedFixture{t: t, api: a, handler: a.Handler(), db: db, clock: clk, agents: agents}
}

// agentToken gives envID a run's agent token (as a start does) and
// returns it.
func (f *hardenedFixture) agentToken(envID string) string {
	f.t.Helper()
	env, err := f.db.UpdateEnvironment(f.t.Context(), envID, func(e *store.Environment) error {
		if e.AgentTokenNonce == "" {
			e.AgentTokenNonce = f.agents.NewNonce()
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.agents.Issue(env.ID, env.AgentTokenNonce)
}

// user creates an account and returns a login token for it.
func (f *hardenedFixture) user(email, password string) (store.User, string) {
	f.t.Helper()
	hash, err := auth.NewPasswords(auth.MinBcryptCost).Hash(password)
	if err != nil {
		f.t.Fatal(err)
	}
	u, err := f.db.CreateUser(f.t.Context(), store.User{Email: email, Name: "n", PasswordHash: hash})
	if err != nil {
		f.t.Fatal(err)
	}
	secret, tokHash, err := auth.NewToken()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.CreateAPIToken(f.t.Context(), store.APIToken{UserID: u.ID, Name: "t", Hash: tokHash, ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		f.t.Fatal(err)
	}
	return u, secret
}

type reqOpts struct {
	remote  string // RemoteAddr; default 192.0.2.1:1234
	token   string
	body    string
	headers map[string]string
	tls     bool
}

func (f *hardenedFixture) do(method, path string, o reqOpts) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if o.body != "" {
		body = strings.NewReader(o.body)
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "192.0.2.1:1234"
	if o.remote != "" {
		req.RemoteAddr = o.remote
	}
	if o.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	for k, v := range o.headers {
		req.Header.Set(k, v)
	}
	if o.tls {
		req.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) sdk.ErrorResponse {
	t.Helper()
	var e sdk.ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	return e
}

// want429 checks a refusal: the status, Retry-After and the error format.
func want429(t *testing.T, rec *httptest.ResponseRecorder, retry string) sdk.ErrorResponse {
	t.Helper()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d (%s), want 429", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("Retry-After"); got != retry {
		t.Fatalf("Retry-After = %q, want %q", got, retry)
	}
	e := decodeError(t, rec)
	if e.Code != httpapi.CodeRateLimited || e.Error == "" {
		t.Fatalf("error body %+v, want code %s", e, httpapi.CodeRateLimited)
	}
	return e
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	for _, tc := range []struct {
		name     string
		path     string
		tls      bool
		wantCode int
		api      bool // the API's strict framing policy, not the IDE's
	}{
		{"health", "/health", false, 200, true},
		{"openapi", "/api/v1/openapi.json", false, 200, true},
		{"refusal", "/api/v1/environments", false, 401, true},
		{"unknown route", "/nope", false, 404, true},
		{"over TLS", "/api/v1/openapi.json", true, 200, true},
		{"IDE", "/w/some-id/ide/", false, 401, false},
		{"IDE over TLS", "/w/some-id/ide/", true, 401, false},
		// A workspace app's own origin: its pages set their own policies.
		{"app origin", "http://ide--env-abcdefghijklmnopqrst.localhost/", false, 404, false},
		{"app origin over TLS", "https://ide--env-abcdefghijklmnopqrst.localhost/", true, 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := f.do("GET", tc.path, reqOpts{tls: tc.tls})
			h := rec.Header()
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if h.Get("Referrer-Policy") == "" {
				t.Error("no Referrer-Policy")
			}
			if tc.api {
				if got := h.Get("X-Frame-Options"); got != "DENY" {
					t.Errorf("X-Frame-Options = %q, want DENY", got)
				}
				if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
					t.Errorf("Content-Security-Policy = %q, want frame-ancestors 'none'", got)
				}
			} else {
				// code-server's pages: the proxy sets frame-ancestors 'self'
				// itself; a DENY here would contradict it.
				if got := h.Get("X-Frame-Options"); got != "" {
					t.Errorf("IDE path got X-Frame-Options %q", got)
				}
				if got := h.Get("Content-Security-Policy"); got != "" {
					t.Errorf("IDE path got Content-Security-Policy %q", got)
				}
			}
			hsts := h.Get("Strict-Transport-Security")
			if tc.tls && !strings.HasPrefix(hsts, "max-age=") {
				t.Errorf("over TLS: Strict-Transport-Security = %q", hsts)
			}
			if !tc.tls && hsts != "" {
				t.Errorf("over plain HTTP: Strict-Transport-Security = %q, want none", hsts)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	allowed := newHardenedFixture(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example.com", "http://localhost:5173/"} })
	none := newHardenedFixture(t, nil)
	preflight := func(origin, method string) reqOpts {
		return reqOpts{headers: map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type"}}
	}
	for _, tc := range []struct {
		name       string
		f          *hardenedFixture
		method     string
		path       string
		opts       reqOpts
		wantCode   int
		wantOrigin string // Access-Control-Allow-Origin; "" = none
		preflight  bool
	}{
		{"preflight allowed", allowed, "OPTIONS", "/api/v1/environments", preflight("https://app.example.com", "POST"), 204, "https://app.example.com", true},
		{"preflight allowed, authenticated route", allowed, "OPTIONS", "/api/v1/environments/abc/start", preflight("https://app.example.com", "POST"), 204, "https://app.example.com", true},
		{"preflight second origin", allowed, "OPTIONS", "/api/v1/auth/login", preflight("http://localhost:5173", "POST"), 204, "http://localhost:5173", true},
		{"preflight other origin", allowed, "OPTIONS", "/api/v1/environments", preflight("https://evil.example.com", "POST"), 405, "", false},
		{"preflight lookalike origin", allowed, "OPTIONS", "/api/v1/environments", preflight("https://app.example.com.evil.com", "DELETE"), 405, "", false},
		{"preflight with no allow-list", none, "OPTIONS", "/api/v1/environments", preflight("https://app.example.com", "POST"), 405, "", false},
		{"simple request allowed", allowed, "GET", "/api/v1/openapi.json", reqOpts{headers: map[string]string{"Origin": "https://app.example.com"}}, 200, "https://app.example.com", false},
		{"refusal keeps CORS headers", allowed, "GET", "/api/v1/environments", reqOpts{headers: map[string]string{"Origin": "https://app.example.com"}}, 401, "https://app.example.com", false},
		{"simple request other origin", allowed, "GET", "/api/v1/openapi.json", reqOpts{headers: map[string]string{"Origin": "https://evil.example.com"}}, 200, "", false},
		{"no origin", allowed, "GET", "/api/v1/openapi.json", reqOpts{}, 200, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tc.f.do(tc.method, tc.path, tc.opts)
			h := rec.Header()
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), tc.wantCode)
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Fatalf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantOrigin)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials must never be allowed cross-origin")
			}
			if tc.f == allowed && !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin", h.Values("Vary"))
			}
			methods, headers := h.Get("Access-Control-Allow-Methods"), strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			if tc.preflight {
				if !strings.Contains(methods, tc.opts.headers["Access-Control-Request-Method"]) {
					t.Errorf("Access-Control-Allow-Methods = %q", methods)
				}
				if !strings.Contains(headers, "authorization") || !strings.Contains(headers, "content-type") {
					t.Errorf("Access-Control-Allow-Headers = %q", headers)
				}
			} else if methods != "" || headers != "" {
				t.Errorf("not an allowed preflight, but got Allow-Methods %q, Allow-Headers %q", methods, headers)
			}
		})
	}
}

func TestRateLimitByAddress(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, func(c *Config) {
		c.RateLimits = httpmw.RateLimits{IPRate: 1, IPBurst: 3, PrincipalRate: -1}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	})
	for i := range 3 {
		if rec := f.do("GET", "/api/v1/openapi.json", reqOpts{}); rec.Code != 200 {
			t.Fatalf("request %d: %d", i+1, rec.Code)
		}
	}
	e := want429(t, f.do("GET", "/api/v1/openapi.json", reqOpts{}), "1")
	if !strings.Contains(e.Details, "address") {
		t.Errorf("details %q should say what was limited", e.Details)
	}
	// Every route counts, known or not, authenticated or not.
	want429(t, f.do("POST", "/api/v1/auth/login", reqOpts{body: `{}`}), "1")
	want429(t, f.do("GET", "/w/x/ide/", reqOpts{}), "1")
	// The health probes never do.
	for _, p := range []string{"/health", "/live", "/ready"} {
		for range 10 {
			if rec := f.do("GET", p, reqOpts{}); rec.Code == http.StatusTooManyRequests {
				t.Fatalf("%s throttled", p)
			}
		}
	}
	// Other addresses have their own buckets, also behind the proxy.
	if rec := f.do("GET", "/api/v1/openapi.json", reqOpts{remote: "192.0.2.2:1"}); rec.Code != 200 {
		t.Fatalf("another address: %d", rec.Code)
	}
	behindProxy := func(client string) reqOpts {
		return reqOpts{remote: "10.0.0.1:5555", headers: map[string]string{"X-Forwarded-For": client}}
	}
	for i := range 3 {
		if rec := f.do("GET", "/api/v1/openapi.json", behindProxy("198.51.100.1")); rec.Code != 200 {
			t.Fatalf("first client behind the proxy, request %d: %d", i+1, rec.Code)
		}
	}
	want429(t, f.do("GET", "/api/v1/openapi.json", behindProxy("198.51.100.1")), "1")
	if rec := f.do("GET", "/api/v1/openapi.json", behindProxy("198.51.100.2")); rec.Code != 200 {
		t.Fatalf("second client behind the proxy: %d", rec.Code)
	}
	// Waiting as told is enough.
	f.clock.Advance(time.Second)
	if rec := f.do("GET", "/api/v1/openapi.json", reqOpts{}); rec.Code != 200 {
		t.Fatalf("after Retry-After: %d", rec.Code)
	}
}

func TestRateLimitByPrincipal(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, func(c *Config) {
		c.RateLimits = httpmw.RateLimits{PrincipalRate: 0.5, PrincipalBurst: 2, IPRate: -1}
	})
	ada, adaToken := f.user("ada@example.com", "correct horse battery")
	_, bobToken := f.user("bob@example.com", "correct horse battery")
	env, err := f.db.CreateEnvironment(t.Context(), store.Environment{UserID: ada.ID, Name: "ws", CPUCores: 1})
	if err != nil {
		t.Fatal(err)
	}
	agentToken := f.agentToken(env.ID)
	// A second token of the same user shares the user's bucket.
	secret, hash, _ := auth.NewToken()
	if _, err := f.db.CreateAPIToken(t.Context(), store.APIToken{UserID: ada.ID, Name: "2nd", Hash: hash, ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, token string
	}{
		{"user", "GET", "/api/v1/auth/me", adaToken},
		{"agent", "POST", "/api/v1/environments/" + env.ID + "/usage", agentToken},
	} {
		for i := range 2 {
			if rec := f.do(tc.method, tc.path, reqOpts{token: tc.token, body: `{"samples":[]}`}); rec.Code == http.StatusTooManyRequests {
				t.Fatalf("%s: request %d throttled", tc.name, i+1)
			}
		}
		e := want429(t, f.do(tc.method, tc.path, reqOpts{token: tc.token, body: `{"samples":[]}`}), "2")
		if !strings.Contains(e.Details, "credentials") {
			t.Errorf("%s: details %q", tc.name, e.Details)
		}
	}
	want429(t, f.do("GET", "/api/v1/auth/me", reqOpts{token: secret}), "2")
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: bobToken}); rec.Code != 200 {
		t.Fatalf("another user: %d", rec.Code)
	}
	// Unauthenticated requests are not charged to anyone's account.
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: "dev8_bogus"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("bad token: %d, want 401", rec.Code)
	}
	f.clock.Advance(2 * time.Second)
	if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: adaToken}); rec.Code != 200 {
		t.Fatalf("after Retry-After: %d", rec.Code)
	}
}

// TestDefaultLimitsLeaveHeadroom: a burst of ordinary use at the defaults
// (an agent's reports, a CLI session, an IDE loading its assets) is never
// refused.
func TestDefaultLimitsLeaveHeadroom(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	_, token := f.user("ada@example.com", "correct horse battery")
	for i := range httpmw.DefaultPrincipalBurst {
		if rec := f.do("GET", "/api/v1/auth/me", reqOpts{token: token}); rec.Code != 200 {
			t.Fatalf("request %d: %d", i+1, rec.Code)
		}
	}
	for i := range httpmw.DefaultIPBurst - httpmw.DefaultPrincipalBurst {
		if rec := f.do("GET", "/w/x/ide/static/asset.js", reqOpts{}); rec.Code == http.StatusTooManyRequests {
			t.Fatalf("IDE asset %d throttled", i+1)
		}
	}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
)

// TestCrossOriginRefusedOnEveryRoute: one rule, before routing, for every
// route the router serves — today's and any added later: a request that
// may change state from another site's page, and a websocket handshake
// from another origin, are 403 CSRF_FAILED before authentication or the
// handler run (an anonymous request would otherwise be a 401, or do what
// it asks, as signup did).
func TestCrossOriginRefusedOnEveryRoute(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, func(c *Config) { c.CORSOrigins = []string{"https://app.example.com"} })
	routes, ok := f.handler.(chi.Routes)
	if !ok {
		t.Fatal("Handler() does not return a chi.Routes")
	}
	type probe struct{ method, path string }
	var probes []probe
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := strings.NewReplacer("{id}", "env_x", "{sid}", "bak_x", "{name}", "NAME", "{provider}", "github", "*", "x").Replace(route)
		probes = append(probes, probe{method, path})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var unsafe, gets int
	for _, p := range probes {
		switch p.method {
		case http.MethodGet:
			gets++
			// Another origin's websocket, any credential: refused.
			for _, origin := range []string{"https://evil.example", "https://app.example.com", "null"} {
				rec := f.do(p.method, p.path, reqOpts{headers: websocketHeaders(origin)})
				wantCrossOrigin(t, rec, fmt.Sprintf("websocket %s %s from %s", p.method, p.path, origin))
			}
		case http.MethodHead, http.MethodOptions, "CONNECT", "TRACE", "QUERY":
		default:
			unsafe++
			for _, h := range []map[string]string{
				{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
				{"Sec-Fetch-Site": "same-site", "Origin": "https://ws.example.test"},
				{"Origin": "https://evil.example"}, // an older browser: no Sec-Fetch-Site
			} {
				rec := f.do(p.method, p.path, reqOpts{body: "{}", headers: h})
				wantCrossOrigin(t, rec, fmt.Sprintf("%s %s with %v", p.method, p.path, h))
			}
		}
	}
	if unsafe < 20 || gets < 20 {
		t.Fatalf("walked %d state-changing and %d GET routes: the walk is broken", unsafe, gets)
	}
}

func websocketHeaders(origin string) map[string]string {
	return map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": origin}
}

func wantCrossOrigin(t *testing.T, rec *httptest.ResponseRecorder, what string) {
	t.Helper()
	if rec.Code != http.StatusForbidden {
		t.Errorf("%s: %d %s, want 403 %s", what, rec.Code, rec.Body.String(), httpapi.CodeCSRFFailed)
		return
	}
	if e := decodeError(t, rec); e.Code != httpapi.CodeCSRFFailed {
		t.Errorf("%s: %+v, want %s", what, e, httpapi.CodeCSRFFailed)
	}
}

// TestSignupRefusesCrossOriginBrowsers: signup is refused to another
// site's page as login is (the same rule), and makes no account; programs,
// the server's own pages and the CORS origins are served.
func TestSignupRefusesCrossOriginBrowsers(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, func(c *Config) {
		c.CORSOrigins = []string{"https://app.example.com"}
		// Anyone may sign up: what is refused is the other site's page.
		c.Signup = signup.New(signup.Config{Policy: signup.Open, Store: c.Store, Now: c.Now})
	})
	signupAs := func(email string, h map[string]string) *httptest.ResponseRecorder {
		return f.do("POST", "/api/v1/auth/signup", reqOpts{body: `{"email":"` + email + `","password":"correct horse","name":"Eve"}`, headers: h})
	}
	for i, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.example.test"},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
	} {
		email := fmt.Sprintf("eve%d@example.com", i)
		wantError(t, signupAs(email, h), http.StatusForbidden, httpapi.CodeCSRFFailed)
		if _, err := f.db.GetUserByEmail(context.Background(), email); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused signup (%v) made an account: %v", h, err)
		}
	}
	for i, h := range []map[string]string{
		nil, // the CLI
		{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"},
		{"Origin": "http://example.com"},                                      // the request's own Host (httptest's)
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example.com"}, // an allowed CORS origin
	} {
		if rec := signupAs(fmt.Sprintf("ada%d@example.com", i), h); rec.Code != http.StatusCreated {
			t.Errorf("signup with %v = %d %s", h, rec.Code, rec.Body.String())
		}
	}
}

// A websocket handshake from the server's own origin, from the access
// URL's origin (behind a proxy that rewrites Host) or from a program (no
// Origin) passes the rule and reaches authentication.
func TestWebsocketFromOwnOriginPasses(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	f.api.SetPublicURL("https://dev8.example.com")
	for _, origin := range []string{"http://example.com", "https://dev8.example.com", ""} {
		h := websocketHeaders(origin)
		if origin == "" {
			delete(h, "Origin")
		}
		wantError(t, f.do("GET", "/api/v1/environments/env_x/pty?reconnect=a", reqOpts{headers: h}), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	}
	// The CSRF cookie and session cookie are not what decides: a
	// cross-origin handshake with the cookie is refused before the lookup.
	wantError(t, f.do("GET", "/api/v1/environments/env_x/pty?reconnect=a", reqOpts{headers: withHeaders(websocketHeaders("https://evil.example"),
		"Cookie", httpmw.SessionCookie+"=dev8s_whatever")}), http.StatusForbidden, httpapi.CodeCSRFFailed)
}

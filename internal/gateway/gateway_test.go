package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// touches records IDE activity instead of the lifecycle manager.
type touches struct {
	mu  sync.Mutex
	ids []string
}

func (t *touches) Touch(_ context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ids = append(t.ids, id)
	return nil
}

func (t *touches) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ids)
}

func newTestGateway(t *testing.T) (*Gateway, *touches) {
	t.Helper()
	rec := &touches{}
	return New(Config{Activity: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), IDEActivityInterval: 90 * time.Second}), rec
}

func TestRequireRunning(t *testing.T) {
	t.Parallel()
	if err := RequireRunning(store.Environment{ID: "env_a", Status: store.StatusRunning}); err != nil {
		t.Fatalf("running: %v", err)
	}
	e := httpapi.ToError(RequireRunning(store.Environment{ID: "env_a", Status: store.StatusStopped}))
	if e.Status != http.StatusConflict || e.Code != httpapi.CodeInvalidState || !strings.Contains(e.Details, "/api/v1/environments/env_a/start") {
		t.Fatalf("stopped: %+v", e)
	}
}

func TestStreamError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
	}{
		{&tunnel.RefusedError{Reason: "nothing listens on 8080"}, http.StatusBadGateway},
		{fmt.Errorf("dial: %w", tunnel.ErrNotConnected), http.StatusServiceUnavailable},
		{errors.New("something else"), http.StatusInternalServerError},
	} {
		if got := httpapi.ToError(StreamError(tc.err)).Status; got != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, got, tc.status)
		}
	}
}

func TestIDERedirectKeepsQuery(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/w/env_a/ide?folder=/src", nil)
	rctx := chiContext(r, "env_a")
	rec := httptest.NewRecorder()
	IDERedirect(rec, rctx)
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/w/env_a/ide/?folder=/src" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Location"))
	}
}

// TestIDEActivity: a report counts only from this server's IDE page (the
// header, and no other origin) and for a running environment.
func TestIDEActivity(t *testing.T) {
	t.Parallel()
	g, rec := newTestGateway(t)
	running := store.Environment{ID: "env_a", Status: store.StatusRunning}
	post := func(env store.Environment, headers map[string]string) int {
		r := httptest.NewRequest("POST", "http://dev8.example/w/env_a/activity", nil)
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		r = r.WithContext(httpmw.WithEnvironment(r.Context(), env))
		w := httptest.NewRecorder()
		g.IDEActivity(w, r)
		return w.Code
	}
	if code := post(running, nil); code != http.StatusForbidden {
		t.Errorf("without %s: %d, want 403", ActivityHeader, code)
	}
	if code := post(running, map[string]string{ActivityHeader: "1", "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("from another origin: %d, want 403", code)
	}
	if code := post(store.Environment{ID: "env_a", Status: store.StatusStopped}, map[string]string{ActivityHeader: "1"}); code != http.StatusConflict {
		t.Errorf("stopped: %d, want 409", code)
	}
	if rec.count() != 0 {
		t.Fatalf("refused reports touched the environment %d times", rec.count())
	}
	if code := post(running, map[string]string{ActivityHeader: "1", "Origin": "http://dev8.example"}); code != http.StatusNoContent {
		t.Errorf("from the IDE page: %d, want 204", code)
	}
	if rec.count() != 1 {
		t.Fatalf("touched %d times, want 1", rec.count())
	}
}

// TestInjectActivityScript: the workbench page gets the script, with the
// interval, and opening it counts as activity; other pages pass untouched.
func TestInjectActivityScript(t *testing.T) {
	t.Parallel()
	g, rec := newTestGateway(t)
	respond := func(contentType, body string) *http.Response {
		req := httptest.NewRequest("GET", "/", nil)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}
	}
	resp := respond("text/html; charset=utf-8", "<html><head><title>x</title></head><body></body></html>")
	if err := g.injectActivityScript(resp, "env_a", ideActivityScriptPath("env_a")); err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	want := `<script src="/w/env_a/activity.js" data-every="90000" defer></script></head>`
	if !strings.Contains(string(page), want) || resp.Header.Get("Content-Length") != fmt.Sprint(len(page)) {
		t.Fatalf("page %q (Content-Length %s), want it to hold %q", page, resp.Header.Get("Content-Length"), want)
	}
	if rec.count() != 1 {
		t.Fatalf("opening the workbench touched %d times, want 1", rec.count())
	}
	// On the IDE's own origin the script is at /__dev8/activity.js.
	resp = respond("text/html; charset=utf-8", "<html><head></head></html>")
	if err := g.injectActivityScript(resp, "env_a", appActivityScriptPath); err != nil {
		t.Fatal(err)
	}
	if page, _ := io.ReadAll(resp.Body); !strings.Contains(string(page), `<script src="/__dev8/activity.js" data-every="90000" defer></script></head>`) || rec.count() != 2 {
		t.Fatalf("page on the IDE's origin %q (touched %d times)", page, rec.count())
	}
	resp = respond("application/json", `{"head":"</head>"}`)
	if err := g.injectActivityScript(resp, "env_a", ideActivityScriptPath("env_a")); err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); string(body) != `{"head":"</head>"}` || rec.count() != 2 {
		t.Fatalf("a non-HTML answer was changed (%q) or counted (%d)", body, rec.count())
	}
}

// chiContext is r routed with {id} = id, as the router would.
func chiContext(r *http.Request, id string) *http.Request {
	rctx := chi.NewRouteContext()
	rctx.URLParams.Add("id", id)
	return r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
}

// TestTerminalRefusesBeforeOpening: a terminal request with a bad id, or
// that is not a websocket handshake, is refused before any stream is
// opened (the gateway here has no tunnels: reaching Dial would panic).
func TestTerminalRefusesBeforeOpening(t *testing.T) {
	t.Parallel()
	g, _ := newTestGateway(t)
	env := store.Environment{ID: "env_a", Status: store.StatusRunning}
	for name, c := range map[string]struct {
		query     string
		handshake bool
		want      int
	}{
		"control character in the id":  {"reconnect=a%0Ab", true, http.StatusBadRequest},
		"direction override in the id": {"reconnect=a%E2%80%AEb", true, http.StatusBadRequest},
		"not a websocket":              {"reconnect=ok&command=touch+x", false, http.StatusUpgradeRequired},
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/environments/env_a/pty?"+c.query, nil)
		if c.handshake {
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Sec-WebSocket-Version", "13")
			r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		r = r.WithContext(httpmw.WithEnvironment(r.Context(), env))
		w := httptest.NewRecorder()
		g.Terminal(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", name, w.Code, w.Body, c.want)
		}
	}
}

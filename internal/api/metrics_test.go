package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/metrics"
)

type observed struct {
	route, method string
	status        int
}

type requestRecorder struct {
	mu      sync.Mutex
	seen    []observed
	streams []string // route + " " + kind
}

func (r *requestRecorder) ObserveRequest(route, method string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, observed{route, method, status})
}

func (r *requestRecorder) ObserveStream(route, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, route+" "+kind)
}

// TestObserveStreams: websockets and event streams are counted as streams,
// not timed as requests.
func TestObserveStreams(t *testing.T) {
	t.Parallel()
	rec := &requestRecorder{}
	r := chi.NewRouter()
	r.Use(httpmw.ObserveRequests(rec))
	r.Get("/things/{id}/ws", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusSwitchingProtocols) })
	r.Get("/things/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = io.WriteString(w, "data: {}\n\n")
	})
	r.Get("/things/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, path := range []string{"/things/a/ws", "/things/b/events", "/things/c"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	wantStreams := []string{"/things/{id}/ws websocket", "/things/{id}/events sse"}
	if !slices.Equal(rec.streams, wantStreams) {
		t.Errorf("streams %q, want %q", rec.streams, wantStreams)
	}
	wantSeen := []observed{{"/things/{id}", "GET", http.StatusTeapot}}
	if !slices.Equal(rec.seen, wantSeen) {
		t.Errorf("requests %+v, want %+v", rec.seen, wantSeen)
	}
}

// TestObserveRequests: requests are reported by route pattern, refusals
// and unknown paths included, and never by raw path.
func TestObserveRequests(t *testing.T) {
	t.Parallel()
	rec := &requestRecorder{}
	h := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Requests: rec}).Handler()
	tests := []struct {
		method, path string
		want         observed
	}{
		{"GET", "/health", observed{"/health", "GET", 200}},
		{"HEAD", "/api/v1/openapi.json", observed{"/api/v1/openapi.json", "HEAD", 200}},
		{"GET", "/api/v1/openapi.json", observed{"/api/v1/openapi.json", "GET", 200}},
		{"GET", "/no/such/route/env_abcdefghijklmnopqrst", observed{"", "GET", 404}},
		{"DELETE", "/health", observed{"", "DELETE", 405}},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		rec.mu.Lock()
		got := rec.seen[len(rec.seen)-1]
		rec.mu.Unlock()
		if got.method != tt.want.method || got.status != tt.want.status || got.status != w.Code {
			t.Errorf("%s %s: observed %+v (answered %d), want %+v", tt.method, tt.path, got, w.Code, tt.want)
		}
		if tt.want.route != "" && got.route != tt.want.route {
			t.Errorf("%s %s: route %q, want %q", tt.method, tt.path, got.route, tt.want.route)
		}
		if strings.Contains(got.route, "env_") || strings.Contains(got.route, "such") {
			t.Errorf("%s %s: route %q carries the raw path", tt.method, tt.path, got.route)
		}
	}

	// Refused before reaching its handler (no token): still a pattern.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/environments/env_abcdefghijklmnopqrst", nil))
	rec.mu.Lock()
	got := rec.seen[len(rec.seen)-1]
	rec.mu.Unlock()
	if got.status != http.StatusUnauthorized || strings.Contains(got.route, "env_abc") {
		t.Errorf("unauthenticated GET: observed %+v", got)
	}
}

// BenchmarkRequestMetrics is the cost of timing a request by route: the
// whole middleware stack serving GET /health, without and with it.
func BenchmarkRequestMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		cfg := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimits: httpmw.RateLimits{IPRate: -1, PrincipalRate: -1}}
		if on {
			name = "on"
			cfg.Requests = metrics.New(cfg.Logger)
		}
		h := New(cfg).Handler()
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/health", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

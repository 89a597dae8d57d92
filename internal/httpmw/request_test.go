package httpmw

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5/middleware"
)

// TestLogRequestsLevel: the dashboard's static assets and the favicon are
// logged at DEBUG (unless the server failed them), every other request at
// INFO, each with its path and status.
func TestLogRequestsLevel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path   string
		status int
		want   slog.Level
	}{
		{"/static/css/app.css", http.StatusOK, slog.LevelDebug},
		{"/static/dist/terminal.js", http.StatusNotModified, slog.LevelDebug},
		{"/static/nope.js", http.StatusNotFound, slog.LevelDebug},
		{"/favicon.ico", http.StatusNotFound, slog.LevelDebug},
		{"/static/broken.js", http.StatusInternalServerError, slog.LevelInfo},
		{"/", http.StatusOK, slog.LevelInfo},
		{"/dashboard", http.StatusOK, slog.LevelInfo},
		{"/api/v1/environments", http.StatusCreated, slog.LevelInfo},
		{"/staticky", http.StatusNotFound, slog.LevelInfo},
		{"/w/env_1/ide/static/app.js", http.StatusOK, slog.LevelDebug},
		{"/w/env_1/ide/stable-1/static/out/vs/workbench.js", http.StatusNotModified, slog.LevelDebug},
		{"/w/env_1/ide/", http.StatusOK, slog.LevelInfo},
		{"/w/env_1/ide/broken.js", http.StatusBadGateway, slog.LevelInfo},
		{"/w/env_1/terminal", http.StatusOK, slog.LevelInfo},
	} {
		t.Run(c.path, func(t *testing.T) {
			t.Parallel()
			serve := func(level slog.Level) []byte {
				var buf bytes.Buffer
				log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
				LogRequests(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(c.status)
				})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, c.path, nil))
				return buf.Bytes()
			}
			logged := serve(slog.LevelDebug)
			var line struct {
				Level  slog.Level
				Msg    string
				Path   string
				Status int
			}
			if err := json.Unmarshal(logged, &line); err != nil {
				t.Fatalf("log %q: %v", logged, err)
			}
			if line.Level != c.want || line.Msg != "request" || line.Path != c.path || line.Status != c.status {
				t.Fatalf("logged %s, want level %s", logged, c.want)
			}
			// At the default level, INFO, the assets leave no line.
			if logged := serve(slog.LevelInfo); (len(logged) > 0) != (c.want == slog.LevelInfo) {
				t.Fatalf("at INFO, logged %q", logged)
			}
		})
	}
}

// TestLogAppRequests: on a workspace app's origin the line names the host,
// never the query (a sign-in ticket travels in one); the files the app's
// page loads are at DEBUG, its page, its posts and its failures at INFO.
func TestLogAppRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		method, target string
		status         int
		want           slog.Level
	}{
		{http.MethodGet, "/", http.StatusOK, slog.LevelInfo},
		{http.MethodGet, "/?folder=/workspace", http.StatusOK, slog.LevelInfo},
		{http.MethodGet, "/static/out/vs/workbench.js", http.StatusOK, slog.LevelDebug},
		{http.MethodGet, "/__dev8/auth?ticket=dev8t_secret", http.StatusSeeOther, slog.LevelDebug},
		{http.MethodPost, "/__dev8/activity", http.StatusNoContent, slog.LevelInfo},
		{http.MethodGet, "/broken.js", http.StatusBadGateway, slog.LevelInfo},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		r := httptest.NewRequest(c.method, "http://ide--env-a.localhost:3000"+c.target, nil)
		LogAppRequests(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
		})).ServeHTTP(httptest.NewRecorder(), r)
		var line struct {
			Level      slog.Level
			Path, Host string
			Status     int
		}
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: log %q: %v", c.target, buf.Bytes(), err)
		}
		if line.Level != c.want || line.Host != "ide--env-a.localhost:3000" || line.Status != c.status || strings.Contains(buf.String(), "secret") || strings.Contains(line.Path, "?") {
			t.Errorf("%s %s: logged %s, want level %s with the host and no query", c.method, c.target, buf.Bytes(), c.want)
		}
	}
}

// TestRequestID: a client's X-Request-Id is kept when it is a short token,
// and replaced when it is long or holds anything else (it is echoed and
// logged); every request gets one.
func TestRequestID(t *testing.T) {
	t.Parallel()
	h := RequestID(EchoRequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	for sent, keep := range map[string]bool{
		"req-123":                         true,
		"4f9c:1.a_b-C":                    true,
		"":                                false,
		strings.Repeat("a", 65):           false,
		"evil\r\nSet-Cookie: x=1":         false,
		"id with spaces":                  false,
		"<script>alert(1)</script>":       false,
		"\x1b[31mred\x1b[0m":              false,
		strings.Repeat("0123456789", 7e3): false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if sent != "" {
			r.Header[middleware.RequestIDHeader] = []string{sent}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get(middleware.RequestIDHeader)
		switch {
		case keep && got != sent:
			t.Errorf("%q: echoed %q, want it kept", sent, got)
		case !keep && (got == sent || !strings.HasPrefix(got, "req-") || len(got) > 64):
			t.Errorf("%q: echoed %q, want one made by the server", sent, got)
		}
	}
}

package httpmw

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
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

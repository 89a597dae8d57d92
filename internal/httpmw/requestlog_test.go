package httpmw

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5/middleware"
)

// TestLogRequestIDs: lines logged with a request's context carry its id,
// through derived loggers too; a line that names its own id keeps it, and
// a line without the context gets none.
func TestLogRequestIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(LogRequestIDs(slog.NewJSONHandler(&buf, nil)))
	if LogRequestIDs(log.Handler()) != log.Handler() {
		t.Error("wrapping twice added a second layer")
	}
	h := middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.WarnContext(r.Context(), "about the request")
		log.With("environment", "env_a").ErrorContext(r.Context(), "derived")
		log.InfoContext(r.Context(), "own id", "request_id", "mine")
		log.Info("no context")
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(middleware.RequestIDHeader, "req-123")
	h.ServeHTTP(httptest.NewRecorder(), req)

	want := map[string]string{"about the request": "req-123", "derived": "req-123", "own id": "mine", "no context": ""}
	dec := json.NewDecoder(&buf)
	seen := 0
	for dec.More() {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		msg, _ := line["msg"].(string)
		id, _ := line["request_id"].(string)
		if w, ok := want[msg]; !ok || id != w {
			t.Errorf("%q: request_id %q, want %q", msg, id, w)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("%d lines, want %d:\n%s", seen, len(want), buf.String())
	}
}

package codeserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/supervisortest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestCodeServerHeartbeatIsStatusOnly: /healthz's lastHeartbeat shows in
// the status, and never counts as activity (an idle tab advances it).
func TestCodeServerHeartbeatIsStatusOnly(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	var hb atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			t.Errorf("poll of %s", r.URL.String())
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "alive", "lastHeartbeat": hb.Load()})
	}))
	defer srv.Close()
	cfg := Config{Addr: srv.Listener.Addr().String(), Logger: supervisortest.Logger()}
	cs := New(cfg)
	for _, beat := range []int64{0, 1700000000000, 1700000060000} {
		hb.Store(beat)
		if !cs.checkHealth(ctx) {
			t.Fatal("checkHealth failed")
		}
		st := cs.Status()
		if st.State != agentapi.CodeServerRunning || st.Health != "alive" {
			t.Fatalf("status after a health check = %+v", st)
		}
		switch {
		case beat == 0 && st.LastHeartbeat != nil:
			t.Errorf("lastHeartbeat 0 shown as %v", st.LastHeartbeat)
		case beat != 0 && (st.LastHeartbeat == nil || !st.LastHeartbeat.Equal(time.UnixMilli(beat))):
			t.Errorf("lastHeartbeat %d shown as %v", beat, st.LastHeartbeat)
		}
	}
}

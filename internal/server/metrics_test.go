package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// get fetches url and returns its status and body.
func get(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads the admin listener's /metrics as Prometheus would.
func (ts *testServer) scrape() map[string]*dto.MetricFamily {
	ts.t.Helper()
	code, body := get(ts.t, ts.ctx, "http://"+ts.srv.AdminAddr().String()+"/metrics")
	if code != http.StatusOK {
		ts.t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		ts.t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// series finds name's series whose labels include want.
func series(families map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// TestMetrics: after a create → RUNNING → stop cycle the admin listener's
// /metrics has every series, with the cycle in them.
func TestMetrics(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			testMetrics(t, eng)
		})
	}
}

func testMetrics(t *testing.T, eng engine) {
	ts := startServer(t, eng.url(t), func(c *server.Config) { c.AdminAddr = "127.0.0.1:0" })
	pool := "writer" // SQLite's one writer connection
	if eng.name == "postgres" {
		pool = "pool"
	}
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "measured"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	if err := ts.client(token).ReportActivity(ts.ctx, env.ID); err != nil {
		t.Fatalf("activity = %v", err)
	}
	// A file for the pre-stop snapshot to find.
	if out := ts.sshRun(t, token, env.ID, "echo hi | tee measured.txt"); strings.TrimSpace(out) != "hi" {
		t.Fatalf("ssh echo = %q", out)
	}
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	if _, err := ts.srv.Manager.Reap(ts.ctx); err != nil {
		t.Fatal(err)
	}
	// Some things are recorded a little after the test can see them
	// happen: an operation once the worker has also written its history
	// entry, a websocket once its handler returns (the session ended on
	// the server's side, whenever that is). Scrape until they are there.
	pending := map[string]map[string]string{
		"dev8_http_streams_total":                   {"route": "/api/v1/environments/{id}/ssh", "kind": "websocket"},
		"dev8_lifecycle_operation_duration_seconds": {"kind": "stop", "outcome": "success"},
	}
	families := ts.scrape()
	for name, labels := range pending {
		wait.Eventually(ts.ctx, t, fmt.Sprintf("%s%v to appear", name, labels), func() bool {
			if len(series(families, name, labels)) > 0 {
				return true
			}
			families = ts.scrape()
			return false
		})
	}

	// value is the one series of name with labels, a counter's or gauge's
	// value or a histogram's count.
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		s := series(families, name, labels)
		if len(s) != 1 {
			t.Fatalf("%s%v: %d series, want 1", name, labels, len(s))
		}
		m := s[0]
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			if m.GetHistogram().GetSampleCount() > 0 && m.GetHistogram().GetSampleSum() <= 0 {
				t.Errorf("%s%v: %d observations summing to %v", name, labels, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum())
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
		t.Fatalf("%s: unexpected type", name)
		return 0
	}
	exactly := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dev8_lifecycle_requests_total", map[string]string{"action": "create"}, 1},
		{"dev8_lifecycle_requests_total", map[string]string{"action": "stop"}, 1},
		{"dev8_lifecycle_operation_duration_seconds", map[string]string{"runtime": "local", "kind": "create", "outcome": "success"}, 1},
		{"dev8_lifecycle_operation_duration_seconds", map[string]string{"runtime": "local", "kind": "stop", "outcome": "success"}, 1},
		{"dev8_environments", map[string]string{"status": "STOPPED"}, 1},
		{"dev8_environments", map[string]string{"status": "RUNNING"}, 0},
		{"dev8_environments", map[string]string{"status": "CREATING"}, 0},
		{"dev8_http_request_duration_seconds", map[string]string{"route": "/api/v1/environments", "method": "POST", "code": "2xx"}, 1},
		{"dev8_http_request_duration_seconds", map[string]string{"route": "/api/v1/environments/{id}/stop", "method": "POST", "code": "2xx"}, 1},
		{"dev8_http_streams_total", map[string]string{"route": "/api/v1/environments/{id}/ssh", "kind": "websocket"}, 1},
		{"dev8_tunnel_streams_opened_total", map[string]string{"service": "ssh", "outcome": "success"}, 1},
		// The stop began with a snapshot of the workspace.
		{"dev8_snapshot_duration_seconds", map[string]string{"trigger": "PRE_SHUTDOWN", "outcome": "success"}, 1},
		{"dev8_tunnel_streams_opened_total", map[string]string{"service": "snapshot", "outcome": "success"}, 1},
	}
	for _, c := range exactly {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	atLeastOne := []struct {
		name   string
		labels map[string]string
	}{
		{"dev8_http_request_duration_seconds", map[string]string{"route": "/api/v1/environments/{id}", "method": "GET", "code": "2xx"}},
		{"dev8_reaper_runs_total", map[string]string{"outcome": "success"}},
		{"dev8_reaper_run_duration_seconds", nil},
		{"dev8_activity_reports_total", nil},
		{"dev8_tunnel_connections_total", nil},
		{"dev8_store_query_duration_seconds", map[string]string{"operation": "GetEnvironment"}},
		{"dev8_store_query_duration_seconds", map[string]string{"operation": "UpdateEnvironment"}},
		{"dev8_store_connections_open", map[string]string{"pool": pool}},
		// measured.txt's 3 bytes at least; the first snapshot stores them
		// and its trees.
		{"dev8_snapshot_scanned_bytes_total", map[string]string{"trigger": "PRE_SHUTDOWN"}},
		{"dev8_snapshot_stored_bytes_total", map[string]string{"trigger": "PRE_SHUTDOWN"}},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	}
	for _, c := range atLeastOne {
		if got := value(c.name, c.labels); got < 1 {
			t.Errorf("%s%v = %v, want at least 1", c.name, c.labels, got)
		}
	}
	// Every request above was authenticated by a store lookup: a login
	// session's or an API token's.
	if n := value("dev8_store_query_duration_seconds", map[string]string{"operation": "GetSessionByHash"}) +
		value("dev8_store_query_duration_seconds", map[string]string{"operation": "GetAPITokenByHash"}); n < 5 {
		t.Errorf("%v credential lookups timed, want at least 5", n)
	}
	for _, name := range []string{
		"dev8_lifecycle_queue_depth", "dev8_lifecycle_operations_in_progress", "dev8_tunnel_sessions",
		"dev8_reaper_environments_stopped_total", "dev8_usage_queue_rows", "dev8_usage_samples_total",
		"dev8_store_connection_wait_seconds_total",
	} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// Routes are patterns: no label anywhere carries the environment's id.
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), env.ID) {
					t.Errorf("%s has label %s=%q: a raw path", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestAdminListener: the profiler answers on the admin listener and
// nowhere on the main one; without an address there is no listener.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) { c.AdminAddr = "127.0.0.1:0" })
	admin := "http://" + ts.srv.AdminAddr().String()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
		if code, body := get(t, ts.ctx, admin+path); code != http.StatusOK || body == "" {
			t.Errorf("admin GET %s = %d (%d bytes)", path, code, len(body))
		}
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/metrics"} {
		if code, _ := get(t, ts.ctx, ts.url+path); code != http.StatusNotFound {
			t.Errorf("main GET %s = %d, want 404", path, code)
		}
	}

	off := startServer(t, "", nil)
	if addr := off.srv.AdminAddr(); addr != nil {
		t.Fatalf("admin listener on %s with no address configured", addr)
	}
}

// A taken admin address fails the start, before anything runs.
func TestAdminAddressTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := server.New(t.Context(), server.Config{
		DataDir:    t.TempDir(),
		Runtime:    "local",
		AdminAddr:  ln.Addr().String(),
		BcryptCost: auth.MinBcryptCost,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil {
		srv.Close()
		t.Fatal("started with its admin address taken")
	}
	if !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("error %q does not name the admin listener", err)
	}
}

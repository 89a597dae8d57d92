package metrics_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"dev8.dev/dev8/internal/metrics"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/usage"
)

func newMetrics(t *testing.T) *metrics.Metrics {
	t.Helper()
	return metrics.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

type counts struct {
	n   map[store.Status]int
	err error
}

func (c counts) CountEnvironmentsByStatus(context.Context) (map[store.Status]int, error) {
	return c.n, c.err
}

type queue struct{ waiting, processing int }

func (q queue) QueueDepth() (int, int) { return q.waiting, q.processing }

type tunnels int

func (n tunnels) Sessions() int { return int(n) }

type usageStats usage.Stats

func (s usageStats) Stats() usage.Stats { return usage.Stats(s) }

type pools map[string]sql.DBStats

func (p pools) PoolStats() map[string]sql.DBStats { return p }

// watchAll registers every scrape-time collector with fixed values.
func watchAll(m *metrics.Metrics, envs counts) {
	m.WatchEnvironments(envs)
	m.WatchQueue(queue{waiting: 3, processing: 2})
	m.WatchTunnels(tunnels(4))
	m.WatchUsage(usageStats{Queued: 5, Written: 100, Dropped: 1, Duplicates: 2, Failed: 3, Deleted: 7})
	m.WatchPools(pools{"writer": {OpenConnections: 1, InUse: 1, WaitCount: 9, WaitDuration: 1500 * time.Millisecond}})
}

func TestSeriesFollowPrometheusConventions(t *testing.T) {
	t.Parallel()
	m := newMetrics(t)
	watchAll(m, counts{n: map[store.Status]int{store.StatusRunning: 1}})
	// Every vector gets a child, so the linter sees every series.
	m.ObserveRequest("/api/v1/environments/{id}", http.MethodGet, http.StatusOK, time.Millisecond)
	m.ObserveStream("/api/v1/environments/{id}/tunnel", "websocket")
	m.LifecycleRequested("create")
	m.OperationDone("local", "create", metrics.OutcomeSuccess, time.Second)
	m.ReaperRan(1, time.Millisecond, nil)
	m.ActivityReported()
	m.TunnelConnected()
	m.StreamOpened("ssh", nil)
	m.SnapshotDone("MANUAL", time.Second, 100, 10, nil)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestObserveRequestBoundsLabels(t *testing.T) {
	t.Parallel()
	m := newMetrics(t)
	m.ObserveRequest("/api/v1/environments/{id}", http.MethodGet, http.StatusOK, 2*time.Millisecond)
	m.ObserveRequest("/api/v1/environments/{id}", http.MethodGet, http.StatusNoContent, 2*time.Millisecond)
	m.ObserveRequest("/api/v1/environments/{id}", http.MethodGet, 0, time.Millisecond) // nothing written: 200
	m.ObserveRequest("", "BREW", http.StatusNotFound, time.Millisecond)
	m.ObserveStream("/api/v1/environments/{id}/pty", "websocket")
	m.ObserveStream("", "sse")

	want := `
# HELP dev8_http_streams_total HTTP requests that became streams, by route pattern and kind: websocket (terminals, SSH, port forwards, tunnels, the IDE) or sse (event streams).
# TYPE dev8_http_streams_total counter
dev8_http_streams_total{kind="sse",route="unmatched"} 1
dev8_http_streams_total{kind="websocket",route="/api/v1/environments/{id}/pty"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "dev8_http_streams_total"); err != nil {
		t.Error(err)
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "dev8_http_request_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			var key []string
			for _, l := range s.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(key, ",")] = s.GetHistogram().GetSampleCount()
		}
	}
	wantCounts := map[string]uint64{
		"code=2xx,method=GET,route=/api/v1/environments/{id}": 3,
		"code=4xx,method=OTHER,route=unmatched":               1,
	}
	if len(got) != len(wantCounts) {
		t.Fatalf("series %v, want %v", got, wantCounts)
	}
	for k, n := range wantCounts {
		if got[k] != n {
			t.Errorf("%s: %d requests, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

func TestScrapeTimeCollectors(t *testing.T) {
	t.Parallel()
	m := newMetrics(t)
	watchAll(m, counts{n: map[store.Status]int{store.StatusRunning: 2, store.StatusStopped: 1}})
	want := `
# HELP dev8_environments Live (not deleted) environments, by status.
# TYPE dev8_environments gauge
dev8_environments{status="RUNNING"} 2
dev8_environments{status="STOPPED"} 1
# HELP dev8_lifecycle_queue_depth Environments waiting for a reconciler worker.
# TYPE dev8_lifecycle_queue_depth gauge
dev8_lifecycle_queue_depth 3
# HELP dev8_lifecycle_operations_in_progress Environments a reconciler worker is operating on now.
# TYPE dev8_lifecycle_operations_in_progress gauge
dev8_lifecycle_operations_in_progress 2
# HELP dev8_tunnel_sessions Supervisor tunnels connected now.
# TYPE dev8_tunnel_sessions gauge
dev8_tunnel_sessions 4
# HELP dev8_usage_samples_total Resource samples reported by supervisors, by result: written, duplicate (a resend), dropped (queue full), failed (the store refused them).
# TYPE dev8_usage_samples_total counter
dev8_usage_samples_total{result="dropped"} 1
dev8_usage_samples_total{result="duplicate"} 2
dev8_usage_samples_total{result="failed"} 3
dev8_usage_samples_total{result="written"} 100
# HELP dev8_usage_queue_rows Resource samples waiting to be written or being written.
# TYPE dev8_usage_queue_rows gauge
dev8_usage_queue_rows 5
# HELP dev8_usage_samples_deleted_total Resource samples removed by retention.
# TYPE dev8_usage_samples_deleted_total counter
dev8_usage_samples_deleted_total 7
# HELP dev8_store_connection_waits_total Times a caller waited for a free connection.
# TYPE dev8_store_connection_waits_total counter
dev8_store_connection_waits_total{pool="writer"} 9
# HELP dev8_store_connection_wait_seconds_total Time callers spent waiting for a free connection.
# TYPE dev8_store_connection_wait_seconds_total counter
dev8_store_connection_wait_seconds_total{pool="writer"} 1.5
`
	err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"dev8_environments", "dev8_lifecycle_queue_depth", "dev8_lifecycle_operations_in_progress",
		"dev8_tunnel_sessions", "dev8_usage_samples_total", "dev8_usage_queue_rows", "dev8_usage_samples_deleted_total",
		"dev8_store_connection_waits_total", "dev8_store_connection_wait_seconds_total")
	if err != nil {
		t.Error(err)
	}
}

// A snapshot's duration is recorded with its trigger and outcome; only a
// success adds bytes.
func TestSnapshotDone(t *testing.T) {
	t.Parallel()
	m := newMetrics(t)
	m.SnapshotDone("PRE_SHUTDOWN", 1500*time.Millisecond, 4096, 512, nil)
	m.SnapshotDone("PRE_SHUTDOWN", 500*time.Millisecond, 8192, 0, nil)
	m.SnapshotDone("SCHEDULED", 2*time.Second, 1<<20, 1<<20, errors.New("the supervisor went away"))
	want := `
# HELP dev8_snapshot_scanned_bytes_total Bytes of workspace files that successful snapshots covered (unchanged files included), by trigger.
# TYPE dev8_snapshot_scanned_bytes_total counter
dev8_snapshot_scanned_bytes_total{trigger="PRE_SHUTDOWN"} 12288
# HELP dev8_snapshot_stored_bytes_total Bytes successful snapshots added to the snapshot repository (new chunks and trees, as stored: what changed since the previous snapshot), by trigger.
# TYPE dev8_snapshot_stored_bytes_total counter
dev8_snapshot_stored_bytes_total{trigger="PRE_SHUTDOWN"} 512
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"dev8_snapshot_scanned_bytes_total", "dev8_snapshot_stored_bytes_total"); err != nil {
		t.Error(err)
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range families {
		if f.GetName() != "dev8_snapshot_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			var key []string
			for _, l := range s.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			h := s.GetHistogram()
			got[strings.Join(key, ",")] = fmt.Sprintf("%d %g", h.GetSampleCount(), h.GetSampleSum())
		}
	}
	wantDurations := map[string]string{
		"outcome=success,trigger=PRE_SHUTDOWN": "2 2",
		"outcome=error,trigger=SCHEDULED":      "1 2",
	}
	if len(got) != len(wantDurations) {
		t.Fatalf("duration series %v, want %v", got, wantDurations)
	}
	for k, v := range wantDurations {
		if got[k] != v {
			t.Errorf("%s: count and sum %q, want %q", k, got[k], v)
		}
	}
}

// A store that does not answer costs its own series, not the scrape.
func TestScrapeSurvivesAFailingStore(t *testing.T) {
	t.Parallel()
	m := newMetrics(t)
	watchAll(m, counts{err: errors.New("database is locked")})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{"dev8_lifecycle_queue_depth 3", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(string(body), "dev8_environments{") {
		t.Error("environments by status served although the store failed")
	}
}

// Each server has its own registry: two in one process do not collide.
func TestTwoInOneProcess(t *testing.T) {
	t.Parallel()
	a, b := newMetrics(t), newMetrics(t)
	watchAll(a, counts{})
	watchAll(b, counts{})
	a.ActivityReported()
	if got := value(t, a, "dev8_activity_reports_total"); got != 1 {
		t.Errorf("a: %v reports, want 1", got)
	}
	if got := value(t, b, "dev8_activity_reports_total"); got != 0 {
		t.Errorf("b: %v reports, want 0 (it counted a's)", got)
	}
}

// value sums a counter's or gauge's series.
func value(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			v += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
		return v
	}
	t.Fatalf("no series %s", name)
	return 0
}

// BenchmarkObserveRequest is the histogram's share of timing a request.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest("/api/v1/environments/{id}", http.MethodGet, http.StatusOK, 3*time.Millisecond)
	}
}

// Package metrics owns Dev8's Prometheus registry: the series the server
// exports on its admin listener, and the small hooks the other packages call
// to feed them. Those packages do not import this one: each declares the
// interface it calls (lifecycle.Observer, tunnel.Observer, httpmw.RequestObserver)
// and the server wires a *Metrics in. Every Metrics has its own registry, so
// one process (a test) can run several servers.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values used when something has none of its own.
const (
	// UnmatchedRoute labels requests no route matched, so a scan of random
	// paths adds no series.
	UnmatchedRoute = "unmatched"
)

// Outcomes of a lifecycle operation.
const (
	OutcomeSuccess = "success"
	OutcomeError   = "error"
	// OutcomeStale: the environment changed while the operation ran (it
	// was deleted, or asked to do something else); the result was dropped.
	OutcomeStale = "stale"
)

// Buckets, in seconds, for each kind of duration.
var (
	// HTTP requests: the GET target is 5 ms at p99.
	httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// Runtime operations: a docker create pulls nothing but still takes
	// a second; a delete of a big volume can take minutes.
	operationBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// Store calls: SQLite reads take tens of microseconds.
	storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	// Reaper sweeps: the target is 50 ms at 10,000 environments.
	reaperBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}
	// Snapshots: an incremental one of an unchanged workspace takes well
	// under a second; a first one of a big workspace, many minutes (the
	// job's limit is an hour).
	snapshotBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
)

// Metrics is one server's set of series and its registry.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	httpDuration *prometheus.HistogramVec
	httpStreams  *prometheus.CounterVec

	lifecycleRequests *prometheus.CounterVec
	operationDuration *prometheus.HistogramVec
	reaperRuns        *prometheus.CounterVec
	reaperDuration    prometheus.Histogram
	reaperStopped     prometheus.Counter
	activityReports   prometheus.Counter

	tunnelConnections prometheus.Counter
	tunnelStreams     *prometheus.CounterVec

	storeDuration *prometheus.HistogramVec

	snapshotDuration     *prometheus.HistogramVec
	snapshotScannedBytes *prometheus.CounterVec
	snapshotStoredBytes  *prometheus.CounterVec
}

// New returns a Metrics with the Go runtime, process and build info
// collectors and every Dev8 series registered. Series whose values are read at scrape time
// (queue depth, environments by status, usage samples, tunnel sessions,
// connection pools) are added with the Watch methods.
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dev8_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern, method and status class (streams excluded: see dev8_http_streams_total).",
			Buckets: httpBuckets,
		}, []string{"route", "method", "code"}),
		httpStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_http_streams_total",
			Help: "HTTP requests that became streams, by route pattern and kind: websocket (terminals, SSH, port forwards, tunnels, the IDE) or sse (event streams).",
		}, []string{"route", "kind"}),
		lifecycleRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_lifecycle_requests_total",
			Help: "Environment state changes asked of the lifecycle manager (create, start, stop, delete) that were accepted.",
		}, []string{"action"}),
		operationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dev8_lifecycle_operation_duration_seconds",
			Help:    "Time of one reconciler operation against the runtime, by runtime, kind (create, start, stop, delete, check) and outcome (success, error, stale).",
			Buckets: operationBuckets,
		}, []string{"runtime", "kind", "outcome"}),
		reaperRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_reaper_runs_total",
			Help: "Idle reaper sweeps, by outcome (success, error).",
		}, []string{"outcome"}),
		reaperDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dev8_reaper_run_duration_seconds",
			Help:    "Time of one idle reaper sweep.",
			Buckets: reaperBuckets,
		}),
		reaperStopped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dev8_reaper_environments_stopped_total",
			Help: "Environments the idle reaper asked to stop.",
		}),
		activityReports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dev8_activity_reports_total",
			Help: "Activity reports recorded (supervisors' reports and IDE traffic), each keeping an environment from idling out.",
		}),
		tunnelConnections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dev8_tunnel_connections_total",
			Help: "Supervisor tunnels accepted (a reconnect counts again).",
		}),
		tunnelStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_tunnel_streams_opened_total",
			Help: "Streams opened through supervisors' tunnels, by service (ssh, pty, tcp, ide, snapshot) and outcome (success, error).",
		}, []string{"service", "outcome"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dev8_store_query_duration_seconds",
			Help:    "Time of one store call (one or a few SQL statements, or a transaction), by operation.",
			Buckets: storeBuckets,
		}, []string{"operation"}),
		snapshotDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dev8_snapshot_duration_seconds",
			Help:    "Time of one workspace snapshot job, by trigger (MANUAL, PRE_SHUTDOWN, SCHEDULED) and outcome (success, error).",
			Buckets: snapshotBuckets,
		}, []string{"trigger", "outcome"}),
		snapshotScannedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_snapshot_scanned_bytes_total",
			Help: "Bytes of workspace files that successful snapshots covered (unchanged files included), by trigger.",
		}, []string{"trigger"}),
		snapshotStoredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dev8_snapshot_stored_bytes_total",
			Help: "Bytes successful snapshots added to the snapshot repository (new chunks and trees, as stored: what changed since the previous snapshot), by trigger.",
		}, []string{"trigger"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		m.httpDuration, m.httpStreams,
		m.lifecycleRequests, m.operationDuration,
		m.reaperRuns, m.reaperDuration, m.reaperStopped, m.activityReports,
		m.tunnelConnections, m.tunnelStreams,
		m.storeDuration,
		m.snapshotDuration, m.snapshotScannedBytes, m.snapshotStoredBytes,
	)
	return m
}

// Registry is where the series live; tests gather from it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format. A collector that fails (the store does not answer) is logged and
// left out; the rest of the scrape is still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: collect", "err", fmt.Sprint(v...)) }

// ObserveRequest records one HTTP request (httpmw.RequestObserver). route is
// the router's pattern (/api/v1/environments/{id}), never the raw path;
// empty means no route matched.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.httpDuration.WithLabelValues(routeLabel(route), methodLabel(method), statusClass(status)).Observe(d.Seconds())
}

// ObserveStream counts a request that became a stream, websocket or sse
// (httpmw.RequestObserver). Its duration is a session's, not a latency: it
// would drown the ordinary requests' in the histogram.
func (m *Metrics) ObserveStream(route, kind string) {
	m.httpStreams.WithLabelValues(routeLabel(route), kind).Inc()
}

func routeLabel(route string) string {
	if route == "" {
		return UnmatchedRoute
	}
	return route
}

// methodLabel bounds the method label to the methods HTTP defines.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// statusClass maps a status code to 2xx, 4xx, ...; 0 (nothing written) is
// the 200 net/http sends.
func statusClass(status int) string {
	if status == 0 {
		status = http.StatusOK
	}
	if i := status/100 - 1; i >= 0 && i < len(statusClasses) {
		return statusClasses[i]
	}
	return strconv.Itoa(status)
}

// LifecycleRequested counts an accepted create, start, stop or delete
// (lifecycle.Observer).
func (m *Metrics) LifecycleRequested(action string) {
	m.lifecycleRequests.WithLabelValues(action).Inc()
}

// OperationDone records one reconciler operation (lifecycle.Observer).
func (m *Metrics) OperationDone(runtime, kind, outcome string, d time.Duration) {
	m.operationDuration.WithLabelValues(runtime, kind, outcome).Observe(d.Seconds())
}

// ReaperRan records one idle reaper sweep (lifecycle.Observer).
func (m *Metrics) ReaperRan(stopped int, d time.Duration, err error) {
	outcome := OutcomeSuccess
	if err != nil {
		outcome = OutcomeError
	}
	m.reaperRuns.WithLabelValues(outcome).Inc()
	m.reaperDuration.Observe(d.Seconds())
	m.reaperStopped.Add(float64(stopped))
}

// ActivityReported counts one recorded activity report (lifecycle.Observer).
func (m *Metrics) ActivityReported() { m.activityReports.Inc() }

// TunnelConnected counts one accepted supervisor tunnel (tunnel.Observer).
func (m *Metrics) TunnelConnected() { m.tunnelConnections.Inc() }

// StreamOpened counts one stream opened through a tunnel (tunnel.Observer).
func (m *Metrics) StreamOpened(service string, err error) {
	outcome := OutcomeSuccess
	if err != nil {
		outcome = OutcomeError
	}
	m.tunnelStreams.WithLabelValues(service, outcome).Inc()
}

// SnapshotDone records one snapshot job (backup.Observer): its
// trigger (MANUAL, PRE_SHUTDOWN, SCHEDULED), how long it took, and for a
// success the bytes it covered and the bytes it stored.
func (m *Metrics) SnapshotDone(trigger string, d time.Duration, scanned, stored int64, err error) {
	outcome := OutcomeSuccess
	if err != nil {
		outcome = OutcomeError
	}
	m.snapshotDuration.WithLabelValues(trigger, outcome).Observe(d.Seconds())
	if err == nil {
		m.snapshotScannedBytes.WithLabelValues(trigger).Add(float64(scanned))
		m.snapshotStoredBytes.WithLabelValues(trigger).Add(float64(stored))
	}
}

// storeTimer is one operation's histogram, looked up once.
type storeTimer struct{ h prometheus.Observer }

// since records a call that began at start.
func (t storeTimer) since(start time.Time) { t.h.Observe(time.Since(start).Seconds()) }

package metrics

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/usage"
)

// countTimeout bounds the store query behind environments by status, so a
// stuck database cannot hold a scrape for long.
const countTimeout = 5 * time.Second

// EnvironmentCounter counts environments by status (*store.DB has it).
type EnvironmentCounter interface {
	CountEnvironmentsByStatus(ctx context.Context) (map[store.Status]int, error)
}

// WatchEnvironments exports dev8_environments{status}: the live environments
// in each status, counted by the store at scrape time (one grouped COUNT).
func (m *Metrics) WatchEnvironments(c EnvironmentCounter) {
	m.reg.MustRegister(&environmentsCollector{
		counter: c,
		desc: prometheus.NewDesc("dev8_environments",
			"Live (not deleted) environments, by status.", []string{"status"}, nil),
	})
}

type environmentsCollector struct {
	counter EnvironmentCounter
	desc    *prometheus.Desc
}

func (c *environmentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *environmentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), countTimeout)
	defer cancel()
	counts, err := c.counter.CountEnvironmentsByStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(status))
	}
}

// Queue is the lifecycle manager's work queue (*lifecycle.Manager has it).
type Queue interface {
	// QueueDepth is how many environments wait for a worker and how many
	// are being worked on.
	QueueDepth() (waiting, processing int)
}

// WatchQueue exports dev8_lifecycle_queue_depth and
// dev8_lifecycle_operations_in_progress.
func (m *Metrics) WatchQueue(q Queue) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dev8_lifecycle_queue_depth",
			Help: "Environments waiting for a reconciler worker.",
		}, func() float64 { w, _ := q.QueueDepth(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dev8_lifecycle_operations_in_progress",
			Help: "Environments a reconciler worker is operating on now.",
		}, func() float64 { _, p := q.QueueDepth(); return float64(p) }),
	)
}

// Tunnels counts connected supervisors (*tunnel.Registry has it).
type Tunnels interface {
	Sessions() int
}

// WatchTunnels exports dev8_tunnel_sessions.
func (m *Metrics) WatchTunnels(t Tunnels) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dev8_tunnel_sessions",
		Help: "Supervisor tunnels connected now.",
	}, func() float64 { return float64(t.Sessions()) }))
}

// UsageStats reports the resource sample writer's counts (*usage.Writer has
// it).
type UsageStats interface {
	Stats() usage.Stats
}

// WatchUsage exports dev8_usage_samples_total{result}, dev8_usage_queue_rows
// and dev8_usage_samples_deleted_total from the writer's own counts.
func (m *Metrics) WatchUsage(u UsageStats) {
	m.reg.MustRegister(&usageCollector{
		stats: u,
		samples: prometheus.NewDesc("dev8_usage_samples_total",
			"Resource samples reported by supervisors, by result: written, duplicate (a resend), dropped (queue full), failed (the store refused them).",
			[]string{"result"}, nil),
		queued: prometheus.NewDesc("dev8_usage_queue_rows",
			"Resource samples waiting to be written or being written.", nil, nil),
		deleted: prometheus.NewDesc("dev8_usage_samples_deleted_total",
			"Resource samples removed by retention.", nil, nil),
	})
}

type usageCollector struct {
	stats                    UsageStats
	samples, queued, deleted *prometheus.Desc
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.samples
	ch <- c.queued
	ch <- c.deleted
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats.Stats()
	for _, r := range []struct {
		result string
		n      int64
	}{{"written", s.Written}, {"duplicate", s.Duplicates}, {"dropped", s.Dropped}, {"failed", s.Failed}} {
		ch <- prometheus.MustNewConstMetric(c.samples, prometheus.CounterValue, float64(r.n), r.result)
	}
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.deleted, prometheus.CounterValue, float64(s.Deleted))
}

// Pools reports the store's connection pools (*store.DB has it).
type Pools interface {
	PoolStats() map[string]sql.DBStats
}

// WatchPools exports the store's connection pool statistics by pool. On
// SQLite every write queues for one connection: the wait counters show how
// much writes contend.
func (m *Metrics) WatchPools(p Pools) {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("dev8_store_"+name, help, []string{"pool"}, nil)
	}
	m.reg.MustRegister(&poolCollector{
		pools:     p,
		open:      desc("connections_open", "Connections open, in use or idle."),
		inUse:     desc("connections_in_use", "Connections running a statement or transaction."),
		idle:      desc("connections_idle", "Connections idle in the pool."),
		waits:     desc("connection_waits_total", "Times a caller waited for a free connection."),
		waitTotal: desc("connection_wait_seconds_total", "Time callers spent waiting for a free connection."),
	})
}

type poolCollector struct {
	pools                               Pools
	open, inUse, idle, waits, waitTotal *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.inUse, c.idle, c.waits, c.waitTotal} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.pools.PoolStats() {
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.OpenConnections), name)
		ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse), name)
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle), name)
		ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.WaitCount), name)
		ch <- prometheus.MustNewConstMetric(c.waitTotal, prometheus.CounterValue, s.WaitDuration.Seconds(), name)
	}
}

// Package usage takes the resource samples supervisors report and stores
// them: a Writer queues them, prices them and writes them in batches, and
// its retention loop deletes old ones.
//
// Pricing: a sample's cost is the environment's estimated cost per hour
// times the interval the sample closes, which is the time since the
// environment's previous sample. The Writer remembers the last timestamp per
// environment in memory, so a sample with no usable predecessor (the first
// after a server restart or after a gap longer than MaxSampleGap, such as a
// stop and start) is taken to cover SampleInterval, the supervisors' default
// sampling interval.
//
// Deduplication: a sample no newer than the last one accepted for its
// environment is dropped. Supervisors send their samples in order and resend
// a batch whose answer they did not get, so this turns retries into no-ops
// (within one server run: the memory is not persisted).
package usage

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/store"
)

// Defaults for Config's zero values.
const (
	DefaultFlushInterval     = time.Second
	DefaultFlushRows         = 500
	DefaultQueueRows         = 20000
	DefaultRetention         = 30 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
	DefaultSampleInterval    = 30 * time.Second
	DefaultMaxSampleGap      = 5 * time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	DefaultCloseTimeout      = 10 * time.Second
)

// maxAttempts is how many flushes a row may fail before it is dropped.
const maxAttempts = 3

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("usage: writer is closed")

// Store is the persistence the Writer needs (*store.DB has it).
type Store interface {
	InsertResourceUsage(ctx context.Context, rows []store.ResourceUsage) error
	ListResourceUsage(ctx context.Context, environmentID string, since time.Time, limit int) ([]store.ResourceUsage, error)
	DeleteResourceUsageBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// Config configures NewWriter. Zero values take the Default constants.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// FlushInterval and FlushRows: queued rows are written every
	// FlushInterval, or as soon as FlushRows are queued, whichever comes
	// first; one INSERT transaction per FlushRows rows.
	FlushInterval time.Duration
	FlushRows     int
	// QueueRows bounds the rows waiting or being written. Beyond it Add
	// drops samples (counted in Stats, logged) instead of blocking.
	QueueRows int
	// Retention is how long samples are kept; RetentionInterval is how often
	// RunRetention deletes older ones.
	Retention         time.Duration
	RetentionInterval time.Duration
	// SampleInterval is the interval assumed for a sample with no usable
	// predecessor; MaxSampleGap is the longest time between two samples
	// that is billed as one interval.
	SampleInterval time.Duration
	MaxSampleGap   time.Duration
	// WriteTimeout bounds one INSERT; CloseTimeout bounds Close's flush.
	WriteTimeout time.Duration
	CloseTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Test hooks, called from the flusher and the retention loop.
	afterFlush     func(rows int, err error)
	afterRetention func(deleted int64, err error)
}

// Stats counts what happened to the samples the Writer was given.
type Stats struct {
	Queued     int   // rows waiting or being written now
	Written    int64 // rows stored
	Dropped    int64 // samples dropped because the queue was full
	Duplicates int64 // samples no newer than their environment's last one
	Failed     int64 // rows dropped after the store refused them maxAttempts times
	Deleted    int64 // rows removed by retention
}

// Writer queues samples and writes them in batches. It is safe for
// concurrent use. NewWriter starts its flusher; Close stops it.
type Writer struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	queue    []queued
	inflight int
	last     map[string]time.Time // newest accepted sample per environment
	closed   bool
	stats    Stats
	warnedAt time.Time // last overload warning
	pruneAt  time.Time

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type queued struct {
	row      store.ResourceUsage
	attempts int
}

// NewWriter applies the defaults and starts the flusher.
func NewWriter(cfg Config) *Writer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.FlushRows <= 0 {
		cfg.FlushRows = DefaultFlushRows
	}
	if cfg.QueueRows <= 0 {
		cfg.QueueRows = DefaultQueueRows
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = DefaultRetentionInterval
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = DefaultSampleInterval
	}
	if cfg.MaxSampleGap <= 0 {
		cfg.MaxSampleGap = DefaultMaxSampleGap
	}
	cfg.MaxSampleGap = max(cfg.MaxSampleGap, cfg.SampleInterval)
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "usage"),
		last: map[string]time.Time{},
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Retention is how long samples are kept.
func (w *Writer) Retention() time.Duration { return w.cfg.Retention }

// Stats returns the counters so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Queued = len(w.queue) + w.inflight
	return st
}

// Add queues an environment's samples, priced at costPerHour (<= 0 or not
// a number: free). It never blocks on the store: when the queue is full the
// samples that do not fit are dropped, counted and logged. It returns
// ErrClosed after Close, and nil otherwise. Validation is the caller's.
func (w *Writer) Add(ctx context.Context, environmentID string, costPerHour float64, samples []agentapi.UsageSample) error {
	if len(samples) == 0 {
		return nil
	}
	sorted := slices.SortedStableFunc(slices.Values(samples), func(a, b agentapi.UsageSample) int { return a.Timestamp.Compare(b.Timestamp) })
	if math.IsNaN(costPerHour) || math.IsInf(costPerHour, 0) || costPerHour < 0 {
		costPerHour = 0
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	last := w.last[environmentID]
	var dropped, dups int64
	for _, s := range sorted {
		ts := s.Timestamp.UTC()
		if !last.IsZero() && !ts.After(last) {
			dups++
			continue
		}
		if len(w.queue)+w.inflight >= w.cfg.QueueRows {
			// Not remembered as the last sample: the next one that fits
			// then covers this one's interval too, so its cost is kept.
			dropped++
			continue
		}
		interval := w.cfg.SampleInterval
		if !last.IsZero() {
			if gap := ts.Sub(last); gap <= w.cfg.MaxSampleGap {
				interval = gap
			}
		}
		w.queue = append(w.queue, queued{row: store.ResourceUsage{
			EnvironmentID:   environmentID,
			Timestamp:       ts,
			CPUUsagePercent: s.CPUUsagePercent,
			MemoryUsageMB:   s.MemoryUsageMB,
			DiskUsageMB:     s.DiskUsageMB,
			NetworkInMB:     s.NetworkInMB,
			NetworkOutMB:    s.NetworkOutMB,
			CostAmount:      costPerHour * interval.Hours(),
			BillingPeriod:   ts.Format("2006-01"),
		}})
		last = ts
	}
	if !last.IsZero() {
		w.last[environmentID] = last
	}
	w.stats.Duplicates += dups
	if dropped > 0 {
		w.stats.Dropped += dropped
		// One warning per 10 s at most: an overloaded server should not
		// also flood its log.
		if now := time.Now(); now.Sub(w.warnedAt) >= 10*time.Second {
			w.warnedAt = now
			w.log.WarnContext(ctx, "usage queue full; dropping samples", "environment", environmentID,
				"dropped", dropped, "droppedTotal", w.stats.Dropped, "queueRows", w.cfg.QueueRows)
		}
	}
	if len(w.queue) >= w.cfg.FlushRows {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// List returns an environment's stored samples taken at or after since,
// oldest first, at most limit (<= 0: all). Samples still queued (up to
// FlushInterval old) are not included.
func (w *Writer) List(ctx context.Context, environmentID string, since time.Time, limit int) ([]store.ResourceUsage, error) {
	return w.cfg.Store.ListResourceUsage(ctx, environmentID, since, limit)
}

// Close stops accepting samples, stops the flusher (waiting for a write in
// progress, at most WriteTimeout) and writes what is queued, within
// CloseTimeout; rows that cannot be written then are dropped (counted as
// Failed) and the last write error is returned. Calling it again returns
// nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done

	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CloseTimeout)
	defer cancel()
	var lastErr error
	for {
		rows, err := w.flushOnce(ctx, true)
		if err != nil {
			lastErr = err
		}
		if rows == 0 {
			break
		}
	}
	if lastErr != nil {
		w.log.Error("usage samples lost at shutdown", "failedTotal", w.Stats().Failed, "err", lastErr)
	}
	return lastErr
}

func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		// Everything queued now; rows that fail go back for the next round.
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		for n > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), w.cfg.WriteTimeout)
			rows, err := w.flushOnce(ctx, false)
			cancel()
			if rows == 0 || err != nil {
				break // failed rows wait for the next round
			}
			n -= rows
		}
		w.prune()
	}
}

// flushOnce writes up to FlushRows queued rows in one transaction and
// reports how many it took off the queue. When the transaction fails, the
// rows are written again per environment, so one environment's bad rows
// (one deleted meanwhile, say) do not sink the others'; rows that still fail
// go back to the queue until they have failed maxAttempts times, or are
// dropped at once when final is set.
func (w *Writer) flushOnce(ctx context.Context, final bool) (int, error) {
	w.mu.Lock()
	n := min(len(w.queue), w.cfg.FlushRows)
	batch := slices.Clone(w.queue[:n])
	w.queue = slices.Delete(w.queue, 0, n)
	w.inflight += n
	w.mu.Unlock()
	if n == 0 {
		return 0, nil
	}

	rows := make([]store.ResourceUsage, n)
	for i, q := range batch {
		rows[i] = q.row
	}
	err := w.cfg.Store.InsertResourceUsage(ctx, rows)
	written := 0
	var retry []queued
	var failed int64
	var lastErr error
	if err == nil {
		written = n
	} else {
		lastErr = err
		groups := map[string][]queued{}
		for _, q := range batch {
			groups[q.row.EnvironmentID] = append(groups[q.row.EnvironmentID], q)
		}
		if len(groups) == 1 {
			for _, g := range groups {
				retry, failed = w.failed(g, final)
			}
		} else {
			for _, env := range slices.Sorted(maps.Keys(groups)) {
				g := groups[env]
				rows := make([]store.ResourceUsage, len(g))
				for i, q := range g {
					rows[i] = q.row
				}
				if err := w.cfg.Store.InsertResourceUsage(ctx, rows); err != nil {
					lastErr = err
					r, f := w.failed(g, final)
					retry, failed = append(retry, r...), failed+f
					continue
				}
				written += len(g)
			}
		}
		if written == n {
			lastErr = nil
		}
	}

	w.mu.Lock()
	w.inflight -= n
	w.stats.Written += int64(written)
	w.stats.Failed += failed
	// Retried rows go first; they were counted in the queue bound already.
	w.queue = append(retry, w.queue...)
	w.mu.Unlock()
	if lastErr != nil {
		w.log.Warn("write usage samples", "rows", n-written, "retrying", len(retry), "dropped", failed, "err", lastErr)
	}
	if w.cfg.afterFlush != nil {
		w.cfg.afterFlush(written, lastErr)
	}
	return n, lastErr
}

// failed counts one more attempt for rows and splits them into those to
// retry and the number dropped.
func (w *Writer) failed(rows []queued, final bool) (retry []queued, dropped int64) {
	for _, q := range rows {
		q.attempts++
		if final || q.attempts >= maxAttempts {
			dropped++
			continue
		}
		retry = append(retry, q)
	}
	return retry, dropped
}

// prune forgets environments whose last sample is too old to matter for
// pricing or deduplication, so the map does not grow with every
// environment ever seen.
func (w *Writer) prune() {
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.pruneAt) < 10*time.Minute {
		return
	}
	w.pruneAt = now
	horizon := max(time.Hour, 2*w.cfg.MaxSampleGap)
	for env, ts := range w.last {
		if now.Sub(ts) > horizon {
			delete(w.last, env)
		}
	}
}

// DeleteExpired deletes the samples older than Retention.
func (w *Writer) DeleteExpired(ctx context.Context) (int64, error) {
	n, err := w.cfg.Store.DeleteResourceUsageBefore(ctx, w.cfg.Now().Add(-w.cfg.Retention))
	if err == nil {
		w.mu.Lock()
		w.stats.Deleted += n
		w.mu.Unlock()
	}
	return n, err
}

// RunRetention deletes expired samples now and then every
// RetentionInterval until ctx is cancelled; it returns ctx.Err(). A failed
// deletion is logged and tried again at the next interval.
func (w *Writer) RunRetention(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, max(w.cfg.WriteTimeout, time.Minute))
		n, err := w.DeleteExpired(dctx)
		cancel()
		if ctx.Err() != nil {
			// Cut short by the end of the loop itself: no pass, no failure.
			return ctx.Err()
		}
		switch {
		case err != nil:
			w.log.Warn("delete expired usage samples", "err", err)
		case n > 0:
			w.log.Info("deleted expired usage samples", "rows", n, "retention", w.cfg.Retention)
		}
		if w.cfg.afterRetention != nil {
			w.cfg.afterRetention(n, err)
		}
		t.Reset(w.cfg.RetentionInterval)
	}
}

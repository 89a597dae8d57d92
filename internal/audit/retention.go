package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

const (
	// DefaultRetention is how long audit events are kept unless configured.
	DefaultRetention = 90 * 24 * time.Hour
	// DefaultPruneInterval is how often expired events are deleted.
	DefaultPruneInterval = time.Hour
	// pruneBatch bounds one delete, so a large backlog is removed in short
	// statements that let other writers in between.
	pruneBatch = 5000
)

// PruneStore deletes old audit events (store.DB implements it).
type PruneStore interface {
	DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

// RetentionConfig configures a Pruner.
type RetentionConfig struct {
	Store PruneStore
	// Retention is how long events are kept (0: DefaultRetention; negative:
	// for ever, and Run does nothing).
	Retention time.Duration
	// Interval is how often Run prunes (default DefaultPruneInterval).
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// pruned, if set, is told each pass's outcome (tests wait on it);
	// batch, if positive, replaces pruneBatch (tests use a small one).
	pruned func(n int64, err error)
	batch  int
}

// Pruner deletes audit events older than the retention, so the log does
// not grow without bound. The server owns its Run.
type Pruner struct{ cfg RetentionConfig }

// NewPruner returns a Pruner for cfg.
func NewPruner(cfg RetentionConfig) *Pruner {
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPruneInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.batch <= 0 {
		cfg.batch = pruneBatch
	}
	return &Pruner{cfg: cfg}
}

// Retention is how long events are kept; negative means for ever.
func (p *Pruner) Retention() time.Duration { return p.cfg.Retention }

// Prune deletes every event older than the retention, in batches, and
// reports how many went.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	if p.cfg.Retention < 0 {
		return 0, nil
	}
	cutoff := p.cfg.Now().Add(-p.cfg.Retention)
	var total int64
	for {
		n, err := p.cfg.Store.DeleteAuditEventsBefore(ctx, cutoff, p.cfg.batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune audit events: %w", err)
		}
		if n < int64(p.cfg.batch) {
			return total, nil
		}
	}
}

// Run prunes now and then every Interval until ctx is cancelled, and
// returns when it is (not before a pass in progress has stopped). A
// failed pass is logged and tried again at the next interval.
func (p *Pruner) Run(ctx context.Context) {
	if p.cfg.Retention < 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := p.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.cfg.Logger.Warn("delete expired audit events", "err", err, "deleted", n)
		case n > 0:
			p.cfg.Logger.Info("deleted expired audit events", "rows", n, "retention", p.cfg.Retention)
		}
		if p.cfg.pruned != nil {
			p.cfg.pruned(n, err)
		}
		t.Reset(p.cfg.Interval)
	}
}

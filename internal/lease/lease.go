// Package lease makes work that must happen once happen once when several
// dev8 server replicas share one database: a replica holds a named lease in
// the store while it does the work, renews it while it lasts, and gives it
// back when done. A replica that dies stops renewing; once its lease
// expires another replica takes the work over.
//
// Two uses: an environment's operation (lifecycle: "environment/<id>"),
// held for one reconcile; and the leader (Lead), held for as long as the
// replica lives, which runs the singleton loops (the idle reaper, resync,
// retention, the snapshot schedule).
package lease

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Store keeps the leases (store.DB implements it). Expiry is timed by the
// store's clock, so replicas' clocks need not agree.
type Store interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	ExpiredLeases(ctx context.Context, prefix string) ([]string, error)
}

// DefaultTTL is how long a lease outlives its holder's last renewal; a
// holder renews it three times as often. It bounds how long work a dead
// replica held waits before another replica takes it over.
const DefaultTTL = 10 * time.Second

// Config configures Leases.
type Config struct {
	Store Store
	// Holder names this replica in the leases it holds (default: a new
	// random name; see NewHolder).
	Holder string
	// TTL: see DefaultTTL (the default when zero).
	TTL    time.Duration
	Logger *slog.Logger
}

// Leases takes, renews and releases one replica's leases.
type Leases struct {
	store  Store
	holder string
	ttl    time.Duration
	log    *slog.Logger
}

// New returns the leases of the replica cfg.Holder names.
func New(cfg Config) *Leases {
	if cfg.Holder == "" {
		cfg.Holder = NewHolder()
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Leases{store: cfg.Store, holder: cfg.Holder, ttl: cfg.TTL, log: cfg.Logger}
}

// NewHolder returns a random name for a replica: a restarted process is a
// new holder, so it never mistakes its predecessor's leases for its own.
func NewHolder() string { return "rep_" + rand.Text()[:16] }

// Holder is the name this replica holds leases under.
func (l *Leases) Holder() string { return l.holder }

// TTL is how long a lease outlives its holder's last renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Held is a lease this replica holds, renewed in the background until
// Release. Its Context ends when the lease is lost (it could not be
// renewed before it expired) or released: the work it guards must stop
// then, since another replica may take it over.
type Held struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	l      *Leases
}

// Context ends when the lease is lost or released.
func (h *Held) Context() context.Context { return h.ctx }

// Release stops renewing the lease and gives it back, so another replica
// may take the work at once instead of after the expiry. It waits for the
// renewal to stop; calling it again does nothing.
func (h *Held) Release() {
	h.once.Do(func() {
		h.cancel()
		<-h.done
		// Given back even when the caller's context has ended (a server
		// shutting down): a replica that restarts at once takes over
		// without waiting for the expiry.
		ctx, cancel := context.WithTimeout(context.Background(), h.l.ttl)
		defer cancel()
		if err := h.l.store.ReleaseLease(ctx, h.name, h.l.holder); err != nil {
			h.l.log.Warn("release lease; it expires by itself", "lease", h.name, "err", err)
		}
	})
}

// TryHold takes lease name when no other replica holds it, and keeps it
// until Release. ok is false when another replica holds it; its Context
// derives from ctx.
func (l *Leases) TryHold(ctx context.Context, name string) (h *Held, ok bool, err error) {
	ok, err = l.store.AcquireLease(ctx, name, l.holder, l.ttl)
	if err != nil || !ok {
		return nil, false, err
	}
	acquired := time.Now()
	hctx, cancel := context.WithCancel(ctx)
	h = &Held{name: name, ctx: hctx, cancel: cancel, done: make(chan struct{}), l: l}
	go func() {
		defer close(h.done)
		l.renew(hctx, name, acquired, cancel)
	}()
	return h, true, nil
}

// renew keeps lease name until ctx ends, and cancels it (through lost)
// when the lease is gone: another holder has it, or no renewal got
// through before it would have expired.
func (l *Leases) renew(ctx context.Context, name string, renewed time.Time, lost context.CancelFunc) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A renewal is bounded so a hung database cannot hold the lease
		// past its expiry unnoticed.
		rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
		ok, err := l.store.RenewLease(rctx, name, l.holder, l.ttl)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ok:
			renewed = time.Now()
			continue
		case err == nil:
			l.log.Warn("lease lost to another replica", "lease", name)
		case time.Since(renewed) < l.ttl-l.ttl/3:
			l.log.Warn("renew lease; retrying", "lease", name, "err", err)
			continue
		default:
			l.log.Error("lease lost: not renewed before its expiry", "lease", name, "err", err)
		}
		lost()
		return
	}
}

// Expired lists the leases starting with prefix that their holders let
// expire: work a replica that died had begun.
func (l *Leases) Expired(ctx context.Context, prefix string) ([]string, error) {
	return l.store.ExpiredLeases(ctx, prefix)
}

// Lead runs fn whenever this replica holds lease name, until ctx ends: it
// waits for the lease (trying again every third of the TTL), runs fn with a
// context that ends when the lease is lost, and when fn returns early or
// the lease is lost, goes back to waiting. On its way out it releases the
// lease, so another replica leads at once. Nil Leases are a server alone:
// it leads, and fn runs at once with ctx.
func (l *Leases) Lead(ctx context.Context, name string, fn func(ctx context.Context)) {
	if l == nil {
		fn(ctx)
		return
	}
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		h, ok, err := l.TryHold(ctx, name)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			l.log.Warn("take lease", "lease", name, "err", err)
		case ok:
			l.log.Info("leading", "lease", name, "holder", l.holder)
			fn(h.Context())
			lost := ctx.Err() == nil && h.Context().Err() != nil
			h.Release()
			if lost {
				l.log.Warn("no longer leading", "lease", name)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package ratelimit

import (
	"context"
	"time"
)

// FailureStore keeps Failures by key where every process that shares it
// sees them: a database several server replicas use.
type FailureStore interface {
	// Failures returns key's record, the zero record when it has none.
	Failures(ctx context.Context, key string) (Failures, error)
	// UpdateFailures passes key's record (zero when none) to change and
	// keeps what change leaves in it (forgets key when that is zero), as
	// one step atomic with respect to every other update of key from any
	// process. The record may be forgotten once it is Stale under window.
	UpdateFailures(ctx context.Context, key string, window time.Duration, change func(*Failures)) error
	// DeleteFailures forgets key's record.
	DeleteFailures(ctx context.Context, key string) error
}

// SharedBackoff is Backoff over a FailureStore: several processes that
// share the store count every key's failures together and honour the same
// locks, by Backoff's rules exactly (Failures' methods are both's). Its
// clock is read at the millisecond, the precision a store keeps; the store
// itself is not asked the time, so a caller's clock rules alone. MaxKeys
// does not apply: the store keeps every key until its record is stale.
type SharedBackoff struct {
	cfg   BackoffConfig
	store FailureStore
}

// NewSharedBackoff returns a SharedBackoff keeping its records in store.
func NewSharedBackoff(cfg BackoffConfig, store FailureStore) *SharedBackoff {
	return &SharedBackoff{cfg: cfg.withDefaults(), store: store}
}

func (b *SharedBackoff) now() time.Time { return b.cfg.Now().Truncate(time.Millisecond) }

// Refuse is Backoff.Refuse: how long key is locked, and whether this is
// the first refusal of its current lock among all the processes.
func (b *SharedBackoff) Refuse(ctx context.Context, key string) (retry time.Duration, first bool, err error) {
	now := b.now()
	f, err := b.store.Failures(ctx, key)
	if err != nil {
		return 0, false, err
	}
	if f.Stale(now, b.cfg.Window) || f.locked(now) == 0 {
		return 0, false, nil
	}
	if f.Reported.Equal(f.LockedUntil) {
		// Reported already: nothing to write.
		return f.locked(now), false, nil
	}
	// Possibly the first refusal: decided under the store's lock, so that
	// of several processes refusing at once exactly one reports it.
	err = b.store.UpdateFailures(ctx, key, b.cfg.Window, func(f *Failures) {
		if f.Stale(now, b.cfg.Window) {
			*f = Failures{}
		}
		retry, first = f.refuse(now)
	})
	if err != nil {
		return 0, false, err
	}
	return retry, first, nil
}

// Fail is Backoff.Fail: it records a failure and returns how long key is
// now locked (0 while it has failures to spare).
func (b *SharedBackoff) Fail(ctx context.Context, key string) (time.Duration, error) {
	now := b.now()
	var delay time.Duration
	err := b.store.UpdateFailures(ctx, key, b.cfg.Window, func(f *Failures) {
		if f.Stale(now, b.cfg.Window) {
			// Backoff would have pruned it: start over.
			*f = Failures{}
		}
		delay = f.fail(b.cfg, now)
	})
	if err != nil {
		return 0, err
	}
	return delay, nil
}

// Reset is Backoff.Reset: it forgets key's failures.
func (b *SharedBackoff) Reset(ctx context.Context, key string) error {
	return b.store.DeleteFailures(ctx, key)
}

package ratelimit

import (
	"sync"
	"time"
)

// BackoffConfig configures a Backoff.
type BackoffConfig struct {
	// MaxFailures is how many failures are allowed before the key is
	// locked (default 5).
	MaxFailures int
	// Window forgets a key's failures when it has had none for this long
	// (default 1 hour). It is longer than MaxDelay so the lock keeps
	// doubling for a patient attacker rather than starting over.
	Window time.Duration
	// BaseDelay is the first lock (default 1 s); each further failure
	// doubles it, up to MaxDelay (default 15 min).
	BaseDelay, MaxDelay time.Duration
	// MaxKeys caps the keys remembered (default DefaultMaxKeys).
	MaxKeys int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Backoff counts failures per key (an account, an address) and locks a key
// out for exponentially growing periods once it has failed too often. It
// keeps them in this process's memory; SharedBackoff keeps the same
// records, by the same rules, in a store several processes share.
type Backoff struct {
	cfg  BackoffConfig
	mu   sync.Mutex
	keys *lru[*Failures]
}

// Failures is one key's record: the rules of Backoff and SharedBackoff
// are its methods, so that both answer alike.
type Failures struct {
	// Count is the failures in the current window, Last the latest.
	Count int
	Last  time.Time
	// LockedUntil is when the latest lock ends (zero: never locked).
	LockedUntil time.Time
	// Reported is the LockedUntil of the lock Refuse last reported as
	// new: later refusals of the same lock are not new.
	Reported time.Time
}

// withDefaults fills in cfg's zero fields.
func (cfg BackoffConfig) withDefaults() BackoffConfig {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 15 * time.Minute
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// NewBackoff returns a Backoff.
func NewBackoff(cfg BackoffConfig) *Backoff {
	cfg = cfg.withDefaults()
	return &Backoff{cfg: cfg, keys: newLRU[*Failures](cfg.MaxKeys)}
}

// IsZero reports whether f records nothing.
func (f Failures) IsZero() bool {
	return f.Count == 0 && f.Last.IsZero() && f.LockedUntil.IsZero() && f.Reported.IsZero()
}

// Stale reports whether f no longer counts at now: its failures are older
// than window and its lock is over. A stale record is as good as none, so
// it may be forgotten.
func (f Failures) Stale(now time.Time, window time.Duration) bool {
	return now.Sub(f.Last) > window && !now.Before(f.LockedUntil)
}

// Expires is when f becomes Stale under window: a store may forget it
// after then.
func (f Failures) Expires(window time.Duration) time.Time {
	if end := f.Last.Add(window); end.After(f.LockedUntil) {
		return end
	}
	return f.LockedUntil
}

// locked is how long f is still locked at now (0: not locked).
func (f Failures) locked(now time.Time) time.Duration {
	if !now.Before(f.LockedUntil) {
		return 0
	}
	return f.LockedUntil.Sub(now)
}

// refuse is Backoff.Refuse on f.
func (f *Failures) refuse(now time.Time) (retry time.Duration, first bool) {
	retry = f.locked(now)
	if retry == 0 {
		return 0, false
	}
	first = !f.Reported.Equal(f.LockedUntil)
	f.Reported = f.LockedUntil
	return retry, first
}

// fail is Backoff.Fail on f under cfg.
func (f *Failures) fail(cfg BackoffConfig, now time.Time) time.Duration {
	if now.Sub(f.Last) > cfg.Window {
		f.Count = 0 // its earlier failures are too old to count
	}
	f.Count++
	f.Last = now
	if f.Count < cfg.MaxFailures {
		return 0
	}
	delay := cfg.BaseDelay
	for i := cfg.MaxFailures; i < f.Count && delay < cfg.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, cfg.MaxDelay)
	f.LockedUntil = now.Add(delay)
	return delay
}

// Locked reports whether key may not try now, and for how long.
func (b *Backoff) Locked(key string) (bool, time.Duration) {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	f, ok := b.keys.get(key)
	if !ok {
		return false, 0
	}
	retry := f.locked(now)
	return retry > 0, retry
}

// Refuse is Locked for an attempt that is about to be refused when the key
// is locked: it also says whether this is the first refusal of the key's
// current lock, so that a caller keeps one record per lock rather than one
// per refused attempt (a flood of them would otherwise be a flood of
// records).
func (b *Backoff) Refuse(key string) (retry time.Duration, first bool) {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	f, ok := b.keys.get(key)
	if !ok {
		return 0, false
	}
	return f.refuse(now)
}

// Fail records a failure and returns how long key is now locked (0 while it
// has failures to spare).
func (b *Backoff) Fail(key string) time.Duration {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	f, ok := b.keys.get(key)
	if !ok {
		f = &Failures{}
		b.keys.add(key, f)
	}
	return f.fail(b.cfg, now)
}

// Reset forgets key's failures (a successful login).
func (b *Backoff) Reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys.remove(key)
}

// prune drops keys whose failures have expired; they would start over
// anyway.
func (b *Backoff) prune(now time.Time) {
	b.keys.pruneOldest(func(f *Failures) bool { return f.Stale(now, b.cfg.Window) })
}

// Len is how many keys are remembered.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys.len()
}

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
// out for exponentially growing periods once it has failed too often.
type Backoff struct {
	cfg  BackoffConfig
	mu   sync.Mutex
	keys *lru[*failures]
}

type failures struct {
	count       int
	last        time.Time
	lockedUntil time.Time
	// reported is the lockedUntil of the lock Refuse last reported as
	// new: later refusals of the same lock are not new.
	reported time.Time
}

// NewBackoff returns a Backoff.
func NewBackoff(cfg BackoffConfig) *Backoff {
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
	return &Backoff{cfg: cfg, keys: newLRU[*failures](cfg.MaxKeys)}
}

// Locked reports whether key may not try now, and for how long.
func (b *Backoff) Locked(key string) (bool, time.Duration) {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	f, ok := b.keys.get(key)
	if !ok || !now.Before(f.lockedUntil) {
		return false, 0
	}
	return true, f.lockedUntil.Sub(now)
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
	if !ok || !now.Before(f.lockedUntil) {
		return 0, false
	}
	first = !f.reported.Equal(f.lockedUntil)
	f.reported = f.lockedUntil
	return f.lockedUntil.Sub(now), first
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
		f = &failures{}
		b.keys.add(key, f)
	}
	if now.Sub(f.last) > b.cfg.Window {
		f.count = 0 // its earlier failures are too old to count
	}
	f.count++
	f.last = now
	if f.count < b.cfg.MaxFailures {
		return 0
	}
	delay := b.cfg.BaseDelay
	for i := b.cfg.MaxFailures; i < f.count && delay < b.cfg.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, b.cfg.MaxDelay)
	f.lockedUntil = now.Add(delay)
	return delay
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
	b.keys.pruneOldest(func(f *failures) bool {
		return now.Sub(f.last) > b.cfg.Window && !now.Before(f.lockedUntil)
	})
}

// Len is how many keys are remembered.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys.len()
}

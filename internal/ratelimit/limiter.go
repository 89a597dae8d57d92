package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds how many clients each throttle remembers.
const DefaultMaxKeys = 10_000

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Rate is the sustained requests per second allowed per key.
	Rate float64
	// Burst is how many requests a key may make at once.
	Burst int
	// MaxKeys caps the keys remembered (default DefaultMaxKeys). When full,
	// the least recently seen key is forgotten: it starts over with a full
	// bucket, the most lenient outcome, never a wrong refusal.
	MaxKeys int
	// Now is the clock (default time.Now); tests move it instead of
	// sleeping.
	Now func() time.Time
}

// Limiter is a token bucket per key. A nil Limiter allows everything.
type Limiter struct {
	cfg  LimiterConfig
	fill time.Duration // how long an empty bucket takes to fill up again
	mu   sync.Mutex
	keys *lru[*bucket]
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// NewLimiter returns a Limiter, or nil (no limit) when cfg.Rate is not
// positive.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.Rate <= 0 {
		return nil
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	fill := time.Duration(float64(cfg.Burst) / cfg.Rate * float64(time.Second))
	return &Limiter{cfg: cfg, fill: fill, keys: newLRU[*bucket](cfg.MaxKeys)}
}

// Allow takes one token from key's bucket. When there is none it returns
// false and how long until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// A bucket untouched for as long as it takes to refill is full again,
	// the same as a new one: dropping it loses nothing, and keeps the map
	// small between floods without a background sweeper.
	l.keys.pruneOldest(func(b *bucket) bool { return now.Sub(b.lastSeen) > l.fill })
	b, ok := l.keys.get(key)
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.keys.add(key, b)
	}
	b.lastSeen = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / l.cfg.Rate * float64(time.Second)))
}

// Len is how many keys are remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keys.len()
}

package tunnel

import (
	"math/rand/v2"
	"time"
)

// backoff spaces a supervisor's redials: exponentially longer from
// MinBackoff up to MaxBackoff, and random within each step ("equal
// jitter": the upper half of the step's range), so that the thousands of
// supervisors a dead replica held do not all redial the same instant,
// again and again, but spread out over the step. Every delay is within
// [min, max].
type backoff struct {
	min, max time.Duration
	// ceiling is the next delay's upper bound: 2·min after a reset,
	// doubling up to max.
	ceiling time.Duration
	// randN returns a random number in [0, n) (rand.Int64N; tests fix it).
	randN func(n int64) int64
}

func newBackoff(lo, hi time.Duration) *backoff {
	b := &backoff{min: lo, max: max(lo, hi), randN: rand.Int64N}
	b.reset()
	return b
}

// reset starts over from the shortest delays (the tunnel was up).
func (b *backoff) reset() { b.ceiling = min(2*b.min, b.max) }

// next returns the delay before the next redial and lengthens the ones
// after it.
func (b *backoff) next() time.Duration {
	hi := b.ceiling
	lo := max(hi/2, b.min)
	b.ceiling = min(2*b.ceiling, b.max)
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(b.randN(int64(hi-lo)+1))
}

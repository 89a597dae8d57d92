package tunnel

import (
	"testing"
	"time"
)

// TestBackoffBoundsAndGrowth: with the random part fixed at its extremes,
// the delays double from MinBackoff to MaxBackoff, never leave
// [MinBackoff, MaxBackoff], and start over after a reset.
func TestBackoffBoundsAndGrowth(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		name  string
		randN func(int64) int64
		want  []time.Duration
	}{
		{"lowest", func(int64) int64 { return 0 },
			[]time.Duration{100, 200, 400, 800, 1600, 2500, 2500}},
		{"highest", func(n int64) int64 { return n - 1 },
			[]time.Duration{200, 400, 800, 1600, 3200, 5000, 5000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackoff(lo, hi)
			b.randN = tc.randN
			for round := range 2 {
				for i, w := range tc.want {
					if got := b.next(); got != w*time.Millisecond {
						t.Fatalf("round %d: delay %d = %v, want %v", round, i, got, w*time.Millisecond)
					}
				}
				b.reset()
			}
		})
	}
}

// TestBackoffJitterSpreads: supervisors that lost their server at the same
// instant redial at different times, at every step, within the step's
// range; with MinBackoff = MaxBackoff the delay is fixed.
func TestBackoffJitterSpreads(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	const supervisors = 1000
	steps := 8
	seen := make([]map[time.Duration]bool, steps)
	for i := range seen {
		seen[i] = map[time.Duration]bool{}
	}
	for range supervisors {
		b := newBackoff(lo, hi) // the real random source
		for i := range steps {
			d := b.next()
			if d < lo || d > hi {
				t.Fatalf("delay %v outside [%v, %v]", d, lo, hi)
			}
			seen[i][d] = true
		}
	}
	for i, s := range seen {
		// The first step spans 100 ms; a thousand draws of a
		// nanosecond-grained delay collide only by chance.
		if len(s) < supervisors*9/10 {
			t.Errorf("step %d: %d supervisors redialed at only %d distinct delays", i, supervisors, len(s))
		}
	}

	b := newBackoff(time.Second, time.Second)
	for range 5 {
		if d := b.next(); d != time.Second {
			t.Fatalf("min = max = 1s: delay %v", d)
		}
	}
}

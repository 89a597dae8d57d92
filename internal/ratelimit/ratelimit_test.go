package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/testclock"
)

func newClock() *testclock.Clock { return testclock.At(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func TestLimiterBurstThenRefill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rate      float64
		burst     int
		wantRetry time.Duration
	}{
		{"one per second", 1, 3, time.Second},
		{"two per second", 2, 5, 500 * time.Millisecond},
		{"slow", 0.1, 1, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			l := NewLimiter(LimiterConfig{Rate: tc.rate, Burst: tc.burst, Now: clk.Now})
			for i := range tc.burst {
				if ok, _ := l.Allow("k"); !ok {
					t.Fatalf("request %d of the burst refused", i+1)
				}
			}
			ok, retry := l.Allow("k")
			if ok {
				t.Fatal("request past the burst allowed")
			}
			if retry != tc.wantRetry {
				t.Fatalf("retry after %v, want %v", retry, tc.wantRetry)
			}
			if ok, _ := l.Allow("other"); !ok {
				t.Fatal("another key is throttled by this one")
			}
			clk.Advance(retry)
			if ok, _ := l.Allow("k"); !ok {
				t.Fatal("refused after waiting as told")
			}
		})
	}
}

func TestNilLimiterAllowsAll(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterConfig{Rate: 0})
	if l != nil {
		t.Fatal("rate 0 should mean no limiter")
	}
	for range 1000 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("nil limiter refused")
		}
	}
}

// TestMemoryIsBounded hammers the throttles with 100k distinct clients: the
// maps never exceed their caps.
func TestMemoryIsBounded(t *testing.T) {
	t.Parallel()
	const maxKeys = 1000
	clk := newClock()
	l := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, MaxKeys: maxKeys, Now: clk.Now})
	b := NewBackoff(BackoffConfig{MaxKeys: maxKeys, Now: clk.Now})
	for i := range 100_000 {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		l.Allow(ip)
		b.Fail(ip)
		if l.Len() > maxKeys || b.Len() > maxKeys {
			t.Fatalf("after %d clients: limiter %d keys, backoff %d keys; cap %d", i+1, l.Len(), b.Len(), maxKeys)
		}
	}
	if l.Len() != maxKeys || b.Len() != maxKeys {
		t.Fatalf("limiter %d keys, backoff %d keys; want the cap %d", l.Len(), b.Len(), maxKeys)
	}
	// Idle buckets are full again and are dropped on the next use.
	clk.Advance(2 * time.Hour)
	l.Allow("fresh")
	b.Fail("fresh")
	if l.Len() != 1 || b.Len() != 1 {
		t.Fatalf("after idling: limiter %d keys, backoff %d keys; want 1", l.Len(), b.Len())
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := NewBackoff(BackoffConfig{MaxFailures: 5, BaseDelay: time.Second, MaxDelay: 15 * time.Minute, Window: time.Hour, Now: clk.Now})
	for i := range 4 {
		if d := b.Fail("a"); d != 0 {
			t.Fatalf("failure %d locked for %v", i+1, d)
		}
		if locked, _ := b.Locked("a"); locked {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	// From the 5th failure on, each failure doubles the lock, up to the cap.
	want := time.Second
	for i := 5; i <= 20; i++ {
		if d := b.Fail("a"); d != want {
			t.Fatalf("failure %d: locked for %v, want %v", i, d, want)
		}
		locked, retry := b.Locked("a")
		if !locked || retry != want {
			t.Fatalf("failure %d: Locked = %v, %v; want true, %v", i, locked, retry, want)
		}
		if locked, _ := b.Locked("b"); locked {
			t.Fatal("another key is locked by this one")
		}
		clk.Advance(want)
		if locked, _ := b.Locked("a"); locked {
			t.Fatalf("failure %d: still locked after %v", i, want)
		}
		want = min(want*2, 15*time.Minute)
	}
	b.Reset("a")
	if d := b.Fail("a"); d != 0 {
		t.Fatalf("after reset: locked for %v", d)
	}
	// Failures older than the window are forgotten.
	for range 3 {
		b.Fail("c")
	}
	clk.Advance(2 * time.Hour)
	for i := range 4 {
		if d := b.Fail("c"); d != 0 {
			t.Fatalf("failure %d after the window: locked for %v", i+1, d)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterConfig{Rate: 1000, Burst: 10, MaxKeys: 50})
	b := NewBackoff(BackoffConfig{MaxKeys: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint(g * i % 97)
				l.Allow(k)
				b.Fail(k)
				b.Locked(k)
				if i%10 == 0 {
					b.Reset(k)
				}
			}
		})
	}
	wg.Wait()
	if l.Len() > 50 || b.Len() > 50 {
		t.Fatalf("caps exceeded: %d, %d", l.Len(), b.Len())
	}
}

// TestBackoffRefuseReportsEachLockOnce: of all the attempts refused during
// one lock, only the first is reported as new, so a caller writes one
// record per lock however hard the key is hammered; the next lock is new
// again.
func TestBackoffRefuseReportsEachLockOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := NewBackoff(BackoffConfig{MaxFailures: 2, BaseDelay: time.Second, Now: clk.Now})
	if retry, first := b.Refuse("a"); retry != 0 || first {
		t.Fatalf("unknown key: Refuse = %v, %v; want 0, false", retry, first)
	}
	b.Fail("a")
	if retry, first := b.Refuse("a"); retry != 0 || first {
		t.Fatalf("not locked yet: Refuse = %v, %v; want 0, false", retry, first)
	}
	for lock, want := range []time.Duration{time.Second, 2 * time.Second} {
		b.Fail("a")
		news := 0
		for i := range 1000 {
			retry, first := b.Refuse("a")
			if retry != want {
				t.Fatalf("lock %d, refusal %d: retry %v, want %v", lock+1, i+1, retry, want)
			}
			if first {
				news++
			}
		}
		if news != 1 {
			t.Fatalf("lock %d: %d of 1000 refusals reported as new, want 1", lock+1, news)
		}
		if _, first := b.Refuse("b"); first {
			t.Fatal("another key reported as locked")
		}
		clk.Advance(want)
		if retry, first := b.Refuse("a"); retry != 0 || first {
			t.Fatalf("after lock %d ended: Refuse = %v, %v; want 0, false", lock+1, retry, first)
		}
	}
}

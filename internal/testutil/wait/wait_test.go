package wait

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder stands in for the test Eventually fails: it keeps the message
// and ends the goroutine as t.Fatal does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on a goroutine of its own and returns the
// failure message, "" if f returned.
func run(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	ctx := Context(t, Short)
	var calls atomic.Int32
	msg := run(t, func(tb testing.TB) {
		Eventually(ctx, tb, "the third call", func() bool { return calls.Add(1) == 3 })
	})
	if msg != "" || calls.Load() != 3 {
		t.Fatalf("failed with %q after %d calls", msg, calls.Load())
	}
}

func TestEventuallyFailsNamingWhatItAwaited(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	msg := run(t, func(tb testing.TB) {
		Eventually(ctx, tb, "pigs to fly", func() bool { return false })
	})
	if msg != "timed out waiting for pigs to fly" {
		t.Fatalf("message %q", msg)
	}
}

func TestSucceedsReportsTheLastError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	n := 0
	msg := run(t, func(tb testing.TB) {
		Succeeds(ctx, tb, "the snapshot", func() error { n++; return fmt.Errorf("status PENDING after %d looks", n) })
	})
	if !strings.HasPrefix(msg, "timed out waiting for the snapshot: status PENDING after ") || !strings.HasSuffix(msg, fmt.Sprintf(" %d looks", n)) {
		t.Fatalf("message %q after %d looks", msg, n)
	}
}

func TestWaitingNeedsADeadline(t *testing.T) {
	t.Parallel()
	called := false
	msg := run(t, func(tb testing.TB) {
		Succeeds(t.Context(), tb, "anything", func() error { called = true; return errors.New("no") })
	})
	if !strings.Contains(msg, "no deadline") || called {
		t.Fatalf("message %q, check called: %v", msg, called)
	}
}

func TestBackoffAndEvery(t *testing.T) {
	t.Parallel()
	// Backing off, 20 looks take at least 5+10+...+100 ms (>1 s); at a
	// fixed 1 ms they take a small fraction of that.
	looks := func(opts ...Option) time.Duration {
		ctx := Context(t, Short)
		n := 0
		start := time.Now()
		Eventually(ctx, t, "20 looks", func() bool { n++; return n == 20 }, opts...)
		return time.Since(start)
	}
	if d := looks(); d < time.Second {
		t.Errorf("20 looks with backoff took %s", d)
	}
	if d := looks(Every(time.Millisecond)); d > 900*time.Millisecond {
		t.Errorf("20 looks every millisecond took %s", d)
	}
}

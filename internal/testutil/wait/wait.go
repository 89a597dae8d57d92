// Package wait is how tests wait for something that happens on its own
// time (another goroutine, another process, a background job): Eventually
// asks again, backing off, until a condition holds or the test's context
// ends, and then fails the test naming what it waited for. The timeouts are
// shared so that "short" and "long" mean the same in every package.
//
// Never sleep to wait for something that can be awaited: wait on the
// event when there is one, and poll with this package when the only way to
// know is to ask.
package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Timeouts for a test's context (see [Context]), by what the test waits for.
const (
	// Short: work inside the test process (a goroutine, a loopback
	// connection, a local HTTP server).
	Short = 10 * time.Second
	// Medium: another process doing a small thing (a supervisor starting,
	// a report arriving).
	Medium = 30 * time.Second
	// Long: a workspace starting or stopping, a snapshot of real files,
	// an external server (MinIO, Azurite) answering.
	Long = time.Minute
	// VeryLong: a whole test of heavy work under -race on a loaded
	// machine (snapshots and restores of large trees, object-store runs).
	VeryLong = 4 * time.Minute
)

// Poll intervals: Eventually starts at firstDelay and doubles up to
// maxDelay, so a quick condition is seen quickly and a slow one is not
// asked about hundreds of times a second.
const (
	firstDelay = 5 * time.Millisecond
	maxDelay   = 100 * time.Millisecond
)

// Context returns a context for t that ends after timeout, or when t ends.
// A cleanup function needs a context of its own: t's has ended by then.
func Context(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Option changes how Eventually and Succeeds poll.
type Option func(*poll)

type poll struct{ first, max time.Duration }

// Every polls at the fixed interval d instead of backing off: for a state
// that lasts only a moment and must not be missed between two looks.
func Every(d time.Duration) Option {
	return func(p *poll) { p.first, p.max = d, d }
}

// errNotYet is what Eventually reports for a condition that never held.
var errNotYet = errors.New("the condition never held")

// Eventually calls cond until it returns true. If ctx ends first it fails
// t with "timed out waiting for <what>". ctx must have a deadline (see
// [Context]), so that a wait cannot hang a test run.
//
// cond runs on the calling goroutine, so it may itself call t.Fatal (for a
// state from which the awaited one can no longer come).
func Eventually(ctx context.Context, t testing.TB, what string, cond func() bool, opts ...Option) {
	t.Helper()
	Succeeds(ctx, t, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}, opts...)
}

// Succeeds calls check until it returns nil. If ctx ends first it fails t
// with what it waited for and check's last error, which should say what
// was seen instead ("status PENDING", "3 rows of 5"). ctx must have a
// deadline.
func Succeeds(ctx context.Context, t testing.TB, what string, check func() error, opts ...Option) {
	t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatalf("waiting for %s: the context has no deadline (use wait.Context)", what)
	}
	p := poll{first: firstDelay, max: maxDelay}
	for _, o := range opts {
		o(&p)
	}
	delay := p.first
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			if err == errNotYet {
				t.Fatalf("timed out waiting for %s", what)
			}
			t.Fatalf("timed out waiting for %s: %v", what, err)
		case <-timer.C:
		}
		delay = min(2*delay, p.max)
	}
}

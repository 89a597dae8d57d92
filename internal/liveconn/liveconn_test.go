package liveconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// revoked reports whether ctx has ended with ErrRevoked.
func revoked(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return errors.Is(context.Cause(ctx), ErrRevoked)
	default:
		return false
	}
}

func track(t *testing.T, r *Registry, user, cred string, check func(context.Context) error) (context.Context, func()) {
	t.Helper()
	ctx, done, err := r.Track(t.Context(), Holder{UserID: user, Credential: cred, Check: check})
	if err != nil {
		t.Fatalf("Track(%s, %s): %v", user, cred, err)
	}
	t.Cleanup(done)
	return ctx, done
}

// TestRevoke: revoking a credential ends exactly its connections, revoking
// a user all of theirs, and a predicate what it matches.
func TestRevoke(t *testing.T) {
	t.Parallel()
	r := New(nil)
	s1a, _ := track(t, r, "ada", Session("s1"), nil)
	s1b, _ := track(t, r, "ada", Session("s1"), nil)
	s2, _ := track(t, r, "ada", Session("s2"), nil)
	tok, _ := track(t, r, "ada", Token("t1"), nil)
	bob, _ := track(t, r, "bob", Session("s3"), nil)
	if r.Len() != 5 {
		t.Fatalf("Len = %d, want 5", r.Len())
	}
	if n := r.RevokeCredential(Session("s1")); n != 2 || !revoked(s1a) || !revoked(s1b) || revoked(s2) || revoked(tok) || revoked(bob) {
		t.Fatalf("RevokeCredential(s1) ended %d; s1 %v %v, others %v %v %v", n, revoked(s1a), revoked(s1b), revoked(s2), revoked(tok), revoked(bob))
	}
	if n := r.Revoke(func(h Holder) bool { return h.UserID == "ada" && IsSession(h.Credential) }); n != 1 || !revoked(s2) || revoked(tok) {
		t.Fatalf("revoking ada's sessions ended %d; s2 %v, token %v", n, revoked(s2), revoked(tok))
	}
	if n := r.RevokeUser("ada"); n != 1 || !revoked(tok) || revoked(bob) {
		t.Fatalf("RevokeUser(ada) ended %d; token %v, bob %v", n, revoked(tok), revoked(bob))
	}
	if n := r.RevokeUser("ada"); n != 0 {
		t.Fatalf("revoking again ended %d", n)
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d, want bob's 1", r.Len())
	}
}

// TestDoneUnregisters: a connection that ended is forgotten, and its end
// is not a revocation.
func TestDoneUnregisters(t *testing.T) {
	t.Parallel()
	r := New(nil)
	ctx, done := track(t, r, "ada", Session("s1"), nil)
	done()
	if r.Len() != 0 || ctx.Err() == nil || errors.Is(context.Cause(ctx), ErrRevoked) {
		t.Fatalf("after done: Len %d, ctx %v (cause %v)", r.Len(), ctx.Err(), context.Cause(ctx))
	}
	if n := r.RevokeCredential(Session("s1")); n != 0 {
		t.Fatalf("revoked %d ended connections", n)
	}
}

// TestTrackChecksAtOnce: a credential revoked between a request's
// authentication and its registration is caught when it registers.
func TestTrackChecksAtOnce(t *testing.T) {
	t.Parallel()
	r := New(nil)
	gone := errors.New("session deleted")
	ctx, done, err := r.Track(t.Context(), Holder{UserID: "ada", Credential: Session("s1"), Check: func(context.Context) error { return gone }})
	defer done()
	if !errors.Is(err, gone) || !revoked(ctx) {
		t.Fatalf("Track with a failing check: %v, revoked %v", err, revoked(ctx))
	}
}

// TestSweep: a sweep ends the connections whose check fails, keeps those
// whose check could not tell, and leaves the rest.
func TestSweep(t *testing.T) {
	t.Parallel()
	r := New(nil)
	var mu sync.Mutex
	verdict := map[string]error{}
	check := func(cred string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return verdict[cred]
		}
	}
	ok, _ := track(t, r, "ada", Session("ok"), check("ok"))
	bad, _ := track(t, r, "ada", Session("bad"), check("bad"))
	unsure, _ := track(t, r, "ada", Session("unsure"), check("unsure"))
	unchecked, _ := track(t, r, "ada", Session("none"), nil)
	mu.Lock()
	verdict["bad"] = errors.New("expired")
	verdict["unsure"] = fmt.Errorf("%w: database is down", ErrUnavailable)
	mu.Unlock()
	if n := r.Sweep(t.Context()); n != 1 {
		t.Fatalf("Sweep ended %d, want 1", n)
	}
	if !revoked(bad) || revoked(ok) || revoked(unsure) || revoked(unchecked) {
		t.Fatalf("after the sweep: bad %v, ok %v, unsure %v, unchecked %v", revoked(bad), revoked(ok), revoked(unsure), revoked(unchecked))
	}
}

// TestRunSweepsUntilCancelled: Run sweeps on its own and returns when its
// context ends.
func TestRunSweepsUntilCancelled(t *testing.T) {
	t.Parallel()
	r := New(nil)
	var mu sync.Mutex
	var fail error
	conn, _ := track(t, r, "ada", Session("s"), func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return fail
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, time.Millisecond) }()
	mu.Lock()
	fail = errors.New("suspended")
	mu.Unlock()
	select {
	case <-conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Run never ended the connection whose check fails")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestRegisterChecksAtSweeps: Register does not run the check at once (its
// request was just checked), but the connection is revoked with the rest
// and its check runs at the next sweep.
func TestRegisterChecksAtSweeps(t *testing.T) {
	t.Parallel()
	r := New(nil)
	var calls int
	var mu sync.Mutex
	gone := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return errors.New("signed out")
	}
	ctx, done := r.Register(t.Context(), Holder{UserID: "ada", Credential: Session("s1"), Check: gone})
	t.Cleanup(done)
	mu.Lock()
	if calls != 0 || revoked(ctx) {
		t.Fatalf("after Register: %d checks, revoked %v; want none", calls, revoked(ctx))
	}
	mu.Unlock()
	r.Sweep(t.Context())
	if !revoked(ctx) {
		t.Fatal("a sweep whose check fails left the registered connection open")
	}
	other, done2 := r.Register(t.Context(), Holder{UserID: "ada", Credential: Session("s2")})
	t.Cleanup(done2)
	if n := r.RevokeCredential(Session("s2")); n != 1 || !revoked(other) {
		t.Fatalf("RevokeCredential ended %d, revoked %v", n, revoked(other))
	}
	done2()
	if r.Len() != 0 {
		t.Fatalf("Len = %d after both ended, want 0", r.Len())
	}
}

package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/lease"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/testclock"
	"dev8.dev/dev8/internal/testutil/wait"
)

// leaseStore is the lease store as one replica sees it: cut off from the
// database (a replica killed, or partitioned) it neither renews nor
// releases, and its refused acquisitions are counted.
type leaseStore struct {
	lease.Store
	cut     atomic.Bool
	refused chan string // names of leases another replica held
}

var errCutOff = errors.New("cut off from the database")

func (s *leaseStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if s.cut.Load() {
		return false, errCutOff
	}
	ok, err := s.Store.AcquireLease(ctx, name, holder, ttl)
	if err == nil && !ok {
		select {
		case s.refused <- name:
		default:
		}
	}
	return ok, err
}

func (s *leaseStore) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if s.cut.Load() {
		return false, errCutOff
	}
	return s.Store.RenewLease(ctx, name, holder, ttl)
}

func (s *leaseStore) ReleaseLease(ctx context.Context, name, holder string) error {
	if s.cut.Load() {
		return errCutOff
	}
	return s.Store.ReleaseLease(ctx, name, holder)
}

// replica is one more Manager on a harness's store and runtime, with
// leases of its own, as another dev8 server replica runs it.
type replica struct {
	m      *Manager
	leases *leaseStore
	stop   context.CancelFunc
	done   chan error
}

// newReplicaHarness is a harness for replicas: a store, a runtime and a
// user, but no manager of its own (one without leases would drive
// everything at once).
func newReplicaHarness(t *testing.T) *harness {
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	return &harness{t: t, ctx: ctx, db: db, rt: newMemRuntime(), clock: testclock.At(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), user: user}
}

// awaitStatus waits for environment id to be recorded with status want,
// whichever replica recorded it.
func (h *harness) awaitStatus(id string, want store.Status) store.Environment {
	h.t.Helper()
	var env store.Environment
	wait.Eventually(h.ctx, h.t, id+" to be "+string(want), func() bool {
		var err error
		env, err = h.db.GetEnvironment(h.ctx, id)
		return err == nil && env.Status == want
	}, wait.Every(5*time.Millisecond))
	return env
}

const replicaLeaseTTL = 600 * time.Millisecond

func (h *harness) replica(t *testing.T, run bool) *replica {
	ls := &leaseStore{Store: h.db, refused: make(chan string, 64)}
	r := &replica{leases: ls, done: make(chan error, 1)}
	r.m = New(Config{
		Store:          h.db,
		Runtime:        h.rt,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase:      time.Millisecond,
		MaxAttempts:    3,
		ReaperInterval: time.Hour,
		ResyncInterval: time.Hour,
		Now:            h.clock.Now,
		Leases:         lease.New(lease.Config{Store: ls, TTL: replicaLeaseTTL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
	})
	if run {
		r.run(t, h.ctx)
	}
	return r
}

func (r *replica) run(t *testing.T, ctx context.Context) {
	runCtx, stop := context.WithCancel(ctx)
	r.stop = stop
	go func() { r.done <- r.m.Run(runCtx) }()
	t.Cleanup(r.kill)
}

// kill stops the replica's manager; it waits for its Run to return once.
func (r *replica) kill() {
	r.stop()
	if err := <-r.done; err != nil {
		panic(err)
	}
	r.done <- nil
}

// TestReplicasDriveAnEnvironmentOnce: while one replica creates a
// workspace, another asked to drive the same environment leaves it alone;
// once it is done, the other replica drives the next operation.
func TestReplicasDriveAnEnvironmentOnce(t *testing.T) {
	t.Parallel()
	h := newReplicaHarness(t)
	a, b := h.replica(t, true), h.replica(t, false)
	release := h.rt.holdEvery("create")
	env, err := a.m.Create(h.ctx, CreateParams{UserID: h.user.ID, Name: "shared", Template: "nodejs"})
	if err != nil {
		t.Fatal(err)
	}
	wait.Eventually(h.ctx, t, "replica a to reach the runtime's create", func() bool { return h.rt.callCount("create:"+env.ID) == 1 })
	// Replica b starts now, and its convergence queues the environment (as
	// its resync would): it finds the lease a holds and does nothing.
	b.run(t, h.ctx)
	for refused := false; !refused; {
		select {
		case name := <-b.leases.refused:
			// (b is refused the leader's leases too, which a holds.)
			refused = name == environmentLease(env.ID)
		case <-h.ctx.Done():
			t.Fatal("b never asked for the environment's lease")
		}
	}
	if n := h.rt.callCount("create:" + env.ID); n != 1 {
		t.Fatalf("the runtime's create ran %d times while replica a held the lease", n)
	}
	release()
	h.awaitStatus(env.ID, store.StatusRunning)
	if n := h.rt.callCount("create:" + env.ID); n != 1 {
		t.Fatalf("the runtime's create ran %d times, want once", n)
	}
	// The next operation, asked of b, is b's.
	if _, err := b.m.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	h.awaitStatus(env.ID, store.StatusStopped)
	if n := h.rt.callCount("stop:" + env.ID); n != 1 {
		t.Fatalf("stop ran %d times, want once", n)
	}
}

// TestReplicaTakesOverAbandonedOperation: a replica that dies while it
// creates a workspace leaves its lease to expire; another replica then
// finishes the create, within seconds, without being asked.
func TestReplicaTakesOverAbandonedOperation(t *testing.T) {
	t.Parallel()
	h := newReplicaHarness(t)
	a, b := h.replica(t, true), h.replica(t, false)
	release := h.rt.holdEvery("create")
	env, err := a.m.Create(h.ctx, CreateParams{UserID: h.user.ID, Name: "orphaned", Template: "nodejs"})
	if err != nil {
		t.Fatal(err)
	}
	wait.Eventually(h.ctx, t, "replica a to reach the runtime's create", func() bool { return h.rt.callCount("create:"+env.ID) == 1 })
	// a dies: cut off from the database, its create abandoned, its lease
	// left behind.
	a.leases.cut.Store(true)
	a.kill()
	if _, _, err := h.db.LeaseHolder(h.ctx, environmentLease(env.ID)); err != nil {
		t.Fatalf("the dead replica's lease is gone (%v): the test would not show a takeover", err)
	}
	release()
	// b starts after a died, as a replica does that was running all along
	// but never heard of this environment (it finds it by the expired lease).
	died := time.Now()
	b.run(t, h.ctx)
	got := h.awaitStatus(env.ID, store.StatusRunning)
	if took := time.Since(died); took > 10*replicaLeaseTTL {
		t.Errorf("the takeover took %s; the lease's TTL is %s", took, replicaLeaseTTL)
	}
	if got.Status != store.StatusRunning || h.rt.state(env.ID) != "running" {
		t.Fatalf("after the takeover: %s, runtime %s", got.Status, h.rt.state(env.ID))
	}
	// Given back once the operation is done (just after it records RUNNING).
	wait.Eventually(h.ctx, t, "the environment's lease to be released", func() bool {
		_, _, err := h.db.LeaseHolder(h.ctx, environmentLease(env.ID))
		return errors.Is(err, store.ErrNotFound)
	})
}

// TestOnlyTheLeaderReaps: of two replicas, one runs the idle reaper.
func TestOnlyTheLeaderReaps(t *testing.T) {
	t.Parallel()
	h := newReplicaHarness(t)
	a, b := h.replica(t, false), h.replica(t, false)
	var ran [2]atomic.Int32
	for i, r := range []*replica{a, b} {
		r.m.cfg.ReaperInterval = 20 * time.Millisecond
		r.m.cfg.Observer = reapCounter{&ran[i]}
		r.run(t, h.ctx)
	}
	wait.Eventually(h.ctx, t, "the reaper to run a few times", func() bool { return ran[0].Load()+ran[1].Load() >= 5 })
	counts := []int32{ran[0].Load(), ran[1].Load()}
	if slices.Min(counts) != 0 {
		t.Fatalf("reaper passes by replica = %v: both reaped", counts)
	}
}

type reapCounter struct{ n *atomic.Int32 }

func (reapCounter) LifecycleRequested(string)                           {}
func (reapCounter) OperationDone(string, string, string, time.Duration) {}
func (c reapCounter) ReaperRan(int, time.Duration, error)               { c.n.Add(1) }
func (reapCounter) ActivityReported()                                   {}

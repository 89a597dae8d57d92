package lease_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/lease"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// forEachEngine runs fn on a fresh SQLite and a fresh PostgreSQL store.
func forEachEngine(t *testing.T, fn func(t *testing.T, ctx context.Context, db *store.DB)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, time.Minute)
			url, path := "", filepath.Join(t.TempDir(), "dev8.db")
			if engine == "postgres" {
				url, path = pgtest.NewDatabase(t), ""
			}
			db, err := store.Open(ctx, url, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			fn(t, ctx, db)
		})
	}
}

// flaky is a store whose renewals can be made to fail, as a replica cut
// off from the database sees them.
type flaky struct {
	lease.Store
	broken atomic.Bool
}

var errCutOff = errors.New("cut off from the database")

func (f *flaky) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if f.broken.Load() {
		return false, errCutOff
	}
	return f.Store.RenewLease(ctx, name, holder, ttl)
}

func (f *flaky) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if f.broken.Load() {
		return false, errCutOff
	}
	return f.Store.AcquireLease(ctx, name, holder, ttl)
}

func TestTryHold(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		a := lease.New(lease.Config{Store: db, TTL: 600 * time.Millisecond})
		b := lease.New(lease.Config{Store: db, TTL: 600 * time.Millisecond})
		if a.Holder() == b.Holder() {
			t.Fatalf("two replicas named alike: %s", a.Holder())
		}
		h, ok, err := a.TryHold(ctx, "environment/env_1")
		if err != nil || !ok {
			t.Fatalf("a: TryHold = %v, %v", ok, err)
		}
		// Held past several TTLs: the renewals keep it.
		select {
		case <-h.Context().Done():
			t.Fatal("a lost a lease it renews")
		case <-time.After(3 * a.TTL()):
		}
		if _, ok, err := b.TryHold(ctx, "environment/env_1"); err != nil || ok {
			t.Fatalf("b: TryHold of a's lease = %v, %v; want refused", ok, err)
		}
		if expired, err := b.Expired(ctx, "environment/"); err != nil || len(expired) != 0 {
			t.Fatalf("Expired = %v, %v; want none while a renews", expired, err)
		}
		h.Release()
		h.Release() // twice is harmless
		if h.Context().Err() == nil {
			t.Error("a released lease's context is still live")
		}
		hb, ok, err := b.TryHold(ctx, "environment/env_1")
		if err != nil || !ok {
			t.Fatalf("b: TryHold after a released = %v, %v", ok, err)
		}
		hb.Release()
	})
}

// TestLostLease: a holder cut off from the database loses its lease (its
// context ends) no later than the lease expires, and the work is then
// another replica's, listed as expired until it takes it.
func TestLostLease(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		const ttl = 600 * time.Millisecond
		cut := &flaky{Store: db}
		a := lease.New(lease.Config{Store: cut, TTL: ttl})
		b := lease.New(lease.Config{Store: db, TTL: ttl})
		h, ok, err := a.TryHold(ctx, "environment/env_2")
		if err != nil || !ok {
			t.Fatalf("TryHold = %v, %v", ok, err)
		}
		defer h.Release()
		cut.broken.Store(true)
		cutAt := time.Now()
		select {
		case <-h.Context().Done():
		case <-ctx.Done():
			t.Fatal("a cut-off holder kept its lease")
		}
		// It gives up two thirds of a TTL after its last renewal, before
		// the lease expires in the store, or two replicas would do the work
		// at once; a loaded machine's late timers get half a TTL more.
		if since := time.Since(cutAt); since > ttl+ttl/2 {
			t.Errorf("a cut-off holder gave up %s after it was cut off; the TTL is %s", since, ttl)
		}
		wait.Eventually(ctx, t, "the lapsed lease to be listed as expired", func() bool {
			expired, err := b.Expired(ctx, "environment/")
			return err == nil && len(expired) == 1 && expired[0] == "environment/env_2"
		})
		hb, ok, err := b.TryHold(ctx, "environment/env_2")
		if err != nil || !ok {
			t.Fatalf("b: TryHold of an expired lease = %v, %v", ok, err)
		}
		hb.Release()
	})
}

// TestLead: of three replicas leading the same lease, at most one leads at
// any time, and when the leader goes (shut down, or cut off from the
// database) another leads.
func TestLead(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		const ttl = 600 * time.Millisecond
		var (
			leading atomic.Int32
			mu      sync.Mutex
			leaders = map[string]int{}
			changed = make(chan string, 16)
		)
		type replica struct {
			l      *lease.Leases
			store  *flaky
			cancel context.CancelFunc
			done   chan struct{}
		}
		start := func() *replica {
			f := &flaky{Store: db}
			r := &replica{l: lease.New(lease.Config{Store: f, TTL: ttl}), store: f, done: make(chan struct{})}
			rctx, cancel := context.WithCancel(ctx)
			r.cancel = cancel
			go func() {
				defer close(r.done)
				r.l.Lead(rctx, "leader", func(lctx context.Context) {
					if n := leading.Add(1); n != 1 {
						t.Errorf("%d replicas lead at once", n)
					}
					mu.Lock()
					leaders[r.l.Holder()]++
					mu.Unlock()
					changed <- r.l.Holder()
					<-lctx.Done()
					leading.Add(-1)
				})
			}()
			t.Cleanup(func() { cancel(); <-r.done })
			return r
		}
		rs := []*replica{start(), start(), start()}
		byHolder := map[string]*replica{}
		for _, r := range rs {
			byHolder[r.l.Holder()] = r
		}
		next := func(what string) *replica {
			t.Helper()
			select {
			case h := <-changed:
				return byHolder[h]
			case <-ctx.Done():
				t.Fatalf("no replica led %s", what)
				return nil
			}
		}
		first := next("at first")
		// A leader shutting down gives the lease back: another leads well
		// before the lease would have expired.
		stopped := time.Now()
		first.cancel()
		<-first.done
		second := next("after the leader shut down")
		if second == first {
			t.Fatal("a replica that shut down leads again")
		}
		if took := time.Since(stopped); took > ttl {
			t.Errorf("the next leader took over %s after a clean shutdown; want within a renewal interval (%s)", took, ttl/3)
		}
		// A leader cut off from the database stops leading before its lease
		// expires, and the last replica takes over.
		second.store.broken.Store(true)
		third := next("after the leader was cut off")
		if third == first || third == second {
			t.Fatalf("leader after the cut = %s, want the third replica", third.l.Holder())
		}
		mu.Lock()
		defer mu.Unlock()
		if len(leaders) != 3 {
			t.Errorf("leaders = %v, want each replica once", leaders)
		}
	})
}

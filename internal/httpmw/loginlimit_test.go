package httpmw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/ratelimit"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/testclock"
	"dev8.dev/dev8/internal/testutil/wait"
)

// forEachStore opens a fresh database per engine, n handles on each (as n
// replicas have), and runs fn on each engine as a parallel subtest.
func forEachStore(t *testing.T, n int, fn func(t *testing.T, ctx context.Context, dbs []*store.DB)) {
	t.Helper()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var url, path string
			if engine == "postgres" {
				url = pgtest.NewDatabase(t)
			} else {
				path = filepath.Join(t.TempDir(), "dev8.db")
			}
			ctx := wait.Context(t, 2*time.Minute)
			dbs := make([]*store.DB, n)
			for i := range dbs {
				db, err := store.Open(ctx, url, path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				dbs[i] = db
			}
			fn(t, ctx, dbs)
		})
	}
}

// TestSharedBackoffAnswersAsMemory: the same sequence of failures,
// refusals, resets and clock moves gets the same answers from the
// failures kept in the store as from the in-memory Backoff, with a window
// longer than the longest lock (the defaults' shape) and shorter.
func TestSharedBackoffAnswersAsMemory(t *testing.T) {
	t.Parallel()
	forEachStore(t, 1, func(t *testing.T, ctx context.Context, dbs []*store.DB) {
		for _, cfg := range []ratelimit.BackoffConfig{
			{MaxFailures: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second, Window: time.Minute},
			{MaxFailures: 2, BaseDelay: 2 * time.Second, MaxDelay: time.Minute, Window: 5 * time.Second},
		} {
			clk := testclock.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			cfg.Now = clk.Now
			mem := ratelimit.NewBackoff(cfg)
			shared := ratelimit.NewSharedBackoff(cfg, StoredLoginFailures(dbs[0]))
			// Keys of their own per config: the store is shared.
			keys := []string{fmt.Sprint(cfg.Window, "a"), fmt.Sprint(cfg.Window, "b"), fmt.Sprint(cfg.Window, "c")}
			moves := []time.Duration{0, time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 7 * time.Second, 30 * time.Second, 2 * time.Minute}
			rng := rand.New(rand.NewPCG(1, uint64(cfg.Window)))
			locks, firsts := 0, 0
			for step := range 600 {
				key := keys[rng.IntN(len(keys))]
				var op string
				var memAns, sharedAns any
				switch p := rng.IntN(100); {
				case p < 45:
					op = "Fail"
					memAns = mem.Fail(key)
					d, err := shared.Fail(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					sharedAns = d
				case p < 80:
					op = "Refuse"
					retry, first := mem.Refuse(key)
					memAns = fmt.Sprint(retry, first)
					sr, sf, err := shared.Refuse(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					sharedAns = fmt.Sprint(sr, sf)
					if retry > 0 {
						locks++
					}
					if first {
						firsts++
					}
				case p < 85:
					op = "Reset"
					mem.Reset(key)
					if err := shared.Reset(ctx, key); err != nil {
						t.Fatal(err)
					}
				default:
					d := moves[rng.IntN(len(moves))]
					op = "Advance " + d.String()
					clk.Advance(d)
				}
				if memAns != sharedAns {
					t.Fatalf("window %v, step %d, %s(%q): memory says %v, the store %v", cfg.Window, step, op, key, memAns, sharedAns)
				}
			}
			// The sequence must have reached what it compares.
			if locks < 20 || firsts < 5 {
				t.Fatalf("window %v: only %d locked refusals, %d first ones: the sequence tests too little", cfg.Window, locks, firsts)
			}
		}
	})
}

// TestSharedBackoffConcurrentReplicas: failures of one key at once on
// several replicas (store handles) are all counted: the lock that follows
// is the one their total earns, and exactly one replica reports its first
// refusal.
func TestSharedBackoffConcurrentReplicas(t *testing.T) {
	t.Parallel()
	forEachStore(t, 3, func(t *testing.T, ctx context.Context, dbs []*store.DB) {
		clk := testclock.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		cfg := ratelimit.BackoffConfig{MaxFailures: 5, BaseDelay: time.Second, MaxDelay: time.Hour, Window: time.Hour, Now: clk.Now}
		replicas := make([]*ratelimit.SharedBackoff, len(dbs))
		for i, db := range dbs {
			replicas[i] = ratelimit.NewSharedBackoff(cfg, StoredLoginFailures(db))
		}
		const goroutines, each = 6, 4 // 24 failures: the 5th locks 1 s, the 24th 2^19 s, capped at an hour
		var wg sync.WaitGroup
		for g := range goroutines {
			b := replicas[g%len(replicas)]
			wg.Go(func() {
				for range each {
					if _, err := b.Fail(ctx, "key"); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		mem := ratelimit.NewBackoff(cfg)
		var want time.Duration
		for range goroutines * each {
			want = mem.Fail("key")
		}
		firsts := make(chan bool, goroutines*len(replicas))
		for g := range goroutines {
			b := replicas[g%len(replicas)]
			wg.Go(func() {
				retry, first, err := b.Refuse(ctx, "key")
				if err != nil || retry != want {
					t.Errorf("Refuse = %v, %v; want %v: every failure counted", retry, err, want)
				}
				firsts <- first
			})
		}
		wg.Wait()
		close(firsts)
		n := 0
		for f := range firsts {
			if f {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d replicas reported the lock's first refusal, want 1", n)
		}
	})
}

// failingWrites is a store whose reads work and whose writes fail, as a
// database gone read-only does.
type failingWrites struct{ LoginFailureStore }

var errReadOnly = errors.New("database is read-only")

func (failingWrites) UpdateLoginFailure(context.Context, string, func(*store.LoginFailure)) error {
	return errReadOnly
}

func (failingWrites) DeleteLoginFailure(context.Context, string) error { return errReadOnly }

// TestSharedLoginThrottleStoreErrors: a login whose shared failures cannot
// be read is refused with a 503 (fail closed); a failure the store cannot
// take is still counted, by this server alone.
func TestSharedLoginThrottleStoreErrors(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := wait.Context(t, time.Minute)
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/auth/login", nil).WithContext(ctx)
	req.RemoteAddr = "198.51.100.7:1234"

	clk := testclock.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	readOnly := NewThrottles(RateLimits{}, StoredLoginFailures(failingWrites{db}), nil, clk.Now, log)
	for range DefaultLoginFailures {
		if _, locked, err := readOnly.LoginLocked(req, "ada@example.com"); locked || err != nil {
			t.Fatalf("before the limit: locked %v, %v", locked, err)
		}
		readOnly.LoginFailed(req, "ada@example.com")
	}
	lock, locked, err := readOnly.LoginLocked(req, "ada@example.com")
	if err != nil || !locked || lock.Retry != time.Second || !lock.New {
		t.Fatalf("failures the store refused: %+v, locked %v, %v; want a new 1 s lock counted in memory", lock, locked, err)
	}

	closed := NewThrottles(RateLimits{}, StoredLoginFailures(db), nil, clk.Now, log)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, locked, err = closed.LoginLocked(req, "ada@example.com")
	if !errors.Is(err, ErrLoginThrottleUnavailable) || locked {
		t.Fatalf("unreadable store: locked %v, err %v; want ErrLoginThrottleUnavailable", locked, err)
	}
	if e := httpapi.ToError(err); e.Status != http.StatusServiceUnavailable || e.Code != httpapi.CodeNotReady {
		t.Fatalf("answer %d %s, want 503 %s", e.Status, e.Code, httpapi.CodeNotReady)
	}
}

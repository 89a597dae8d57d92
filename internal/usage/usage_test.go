package usage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
)

var engines = []string{"sqlite", "postgres"}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// forEachEngine runs fn as a parallel subtest per engine, on a fresh store
// holding one user.
func forEachEngine(t *testing.T, fn func(t *testing.T, ctx context.Context, db *store.DB, userID string)) {
	t.Helper()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, wait.Long)
			var url, path string
			if engine == "postgres" {
				url = pgtest.NewDatabase(t)
			} else {
				path = filepath.Join(t.TempDir(), "dev8.db")
			}
			db, err := store.Open(ctx, url, path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			u, err := db.CreateUser(ctx, store.User{Email: "usage@example.com", Name: "u", PasswordHash: "x"})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, ctx, db, u.ID)
		})
	}
}

func mustEnv(t *testing.T, ctx context.Context, db *store.DB, userID, name string, costPerHour float64) store.Environment {
	t.Helper()
	e, err := db.CreateEnvironment(ctx, store.Environment{UserID: userID, Name: name, EstimatedCostPerHour: costPerHour})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type flushEvent struct {
	rows int
	err  error
}

// newTestWriter returns a writer whose flushes are reported on the
// returned channel, closed by the end of the test.
func newTestWriter(t *testing.T, cfg Config) (*Writer, <-chan flushEvent) {
	t.Helper()
	flushes := make(chan flushEvent, 1000)
	cfg.Logger = testLogger()
	cfg.afterFlush = func(rows int, err error) { flushes <- flushEvent{rows, err} }
	w := NewWriter(cfg)
	t.Cleanup(func() { w.Close() })
	return w, flushes
}

func recv[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func samplesEvery(start time.Time, step time.Duration, n int) []agentapi.UsageSample {
	out := make([]agentapi.UsageSample, n)
	for i := range out {
		out[i] = agentapi.UsageSample{
			Timestamp: start.Add(time.Duration(i) * step), CPUUsagePercent: float64(i), MemoryUsageMB: int64(100 + i),
			DiskUsageMB: 5000, NetworkInMB: 0.5, NetworkOutMB: 0.25,
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestWriterBatchesAndPrices(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "priced", 3.6) // 0.001 a second
		w, flushes := newTestWriter(t, Config{Store: db, FlushRows: 5, FlushInterval: time.Hour})
		// Across a month boundary, in shuffled order: Add sorts.
		base := time.Date(2026, 10, 31, 23, 58, 0, 0, time.UTC)
		samples := samplesEvery(base, 30*time.Second, 12)
		samples[3], samples[7] = samples[7], samples[3]
		if err := w.Add(ctx, env.ID, env.EstimatedCostPerHour, samples); err != nil {
			t.Fatal(err)
		}
		// Twelve rows with FlushRows 5 and no timer: the size triggers
		// the flush, written in transactions of at most five.
		var sizes []int
		for total := 0; total < 12; {
			ev := recv(t, ctx, flushes, "a flush")
			if ev.err != nil {
				t.Fatal(ev.err)
			}
			sizes = append(sizes, ev.rows)
			total += ev.rows
		}
		for _, n := range sizes {
			if n > 5 {
				t.Errorf("flush sizes %v: want at most 5 rows each", sizes)
			}
		}
		rows, err := w.List(ctx, env.ID, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 12 {
			t.Fatalf("%d rows stored, want 12", len(rows))
		}
		for i, r := range rows {
			want := samplesEvery(base, 30*time.Second, 12)[i]
			if !r.Timestamp.Equal(want.Timestamp) || r.MemoryUsageMB != want.MemoryUsageMB || r.CPUUsagePercent != want.CPUUsagePercent ||
				r.DiskUsageMB != 5000 || r.NetworkInMB != 0.5 || r.NetworkOutMB != 0.25 {
				t.Errorf("row %d = %+v, want %+v", i, r, want)
			}
			// The first sample has no predecessor: the default 30 s.
			if !near(r.CostAmount, 0.03) {
				t.Errorf("row %d cost %v, want 0.03 (30 s at 3.6/h)", i, r.CostAmount)
			}
			period := "2026-10"
			if !r.Timestamp.Before(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
				period = "2026-11"
			}
			if r.BillingPeriod != period {
				t.Errorf("row %d at %v: billing period %q, want %q", i, r.Timestamp, r.BillingPeriod, period)
			}
		}
		if st := w.Stats(); st.Written != 12 || st.Queued != 0 || st.Dropped != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestWriterFlushesEveryInterval(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "ticker", 0)
		w, flushes := newTestWriter(t, Config{Store: db, FlushRows: 1000, FlushInterval: 10 * time.Millisecond})
		if err := w.Add(ctx, env.ID, 0, samplesEvery(time.Now().Add(-time.Minute), time.Second, 3)); err != nil {
			t.Fatal(err)
		}
		if ev := recv(t, ctx, flushes, "the timed flush"); ev.rows != 3 || ev.err != nil {
			t.Fatalf("flush %+v, want 3 rows", ev)
		}
		rows, err := w.List(ctx, env.ID, time.Time{}, 0)
		if err != nil || len(rows) != 3 {
			t.Fatalf("List: %d rows, %v", len(rows), err)
		}
		if rows[0].CostAmount != 0 {
			t.Errorf("cost %v for an environment with no price", rows[0].CostAmount)
		}
	})
}

func TestWriterIntervalsGapsAndDuplicates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "gappy", 3.6)
		w, _ := newTestWriter(t, Config{Store: db, FlushInterval: time.Hour})
		t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		at := func(d time.Duration) agentapi.UsageSample { return agentapi.UsageSample{Timestamp: t0.Add(d)} }
		if err := w.Add(ctx, env.ID, 3.6, []agentapi.UsageSample{at(0), at(10 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		// A resent sample, then 60 s later, then after a stop of an hour.
		if err := w.Add(ctx, env.ID, 3.6, []agentapi.UsageSample{at(10 * time.Second), at(70 * time.Second), at(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		// Bad prices cost nothing.
		if err := w.Add(ctx, env.ID, math.NaN(), []agentapi.UsageSample{at(time.Hour + 30*time.Second)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rows, err := w.List(ctx, env.ID, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []float64{0.03, 0.01, 0.06, 0.03, 0}
		if len(rows) != len(want) {
			t.Fatalf("%d rows, want %d", len(rows), len(want))
		}
		for i, r := range rows {
			if !near(r.CostAmount, want[i]) {
				t.Errorf("row %d at %v: cost %v, want %v", i, r.Timestamp.Sub(t0), r.CostAmount, want[i])
			}
		}
		if st := w.Stats(); st.Duplicates != 1 || st.Written != 5 {
			t.Errorf("stats %+v: want 1 duplicate, 5 written", st)
		}
	})
}

func TestWriterCloseFlushes(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "closing", 1)
		w, _ := newTestWriter(t, Config{Store: db, FlushInterval: time.Hour, FlushRows: 1000})
		if err := w.Add(ctx, env.ID, 1, samplesEvery(time.Now().Add(-time.Hour), time.Minute, 7)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		rows, err := w.List(ctx, env.ID, time.Time{}, 0)
		if err != nil || len(rows) != 7 {
			t.Fatalf("after Close: %d rows, %v; want 7", len(rows), err)
		}
		if err := w.Add(ctx, env.ID, 1, samplesEvery(time.Now(), time.Minute, 1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Add after Close = %v, want ErrClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}

// gatedStore holds every insert until the test lets it through.
type gatedStore struct {
	Store
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) InsertResourceUsage(ctx context.Context, rows []store.ResourceUsage) error {
	g.entered <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.InsertResourceUsage(ctx, rows)
}

func TestWriterDropsWhenOverloaded(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "busy", 0)
		gs := &gatedStore{Store: db, entered: make(chan struct{}, 100), gate: make(chan struct{})}
		w, flushes := newTestWriter(t, Config{Store: gs, FlushRows: 10, QueueRows: 10, FlushInterval: time.Hour})
		base := time.Now().Add(-time.Hour)
		if err := w.Add(ctx, env.ID, 0, samplesEvery(base, time.Second, 10)); err != nil {
			t.Fatal(err)
		}
		recv(t, ctx, gs.entered, "the flush to reach the store")
		// The store is stuck with 10 rows in flight: the queue is full, and
		// Add drops rather than waits.
		added := make(chan error, 1)
		go func() { added <- w.Add(ctx, env.ID, 0, samplesEvery(base.Add(10*time.Second), time.Second, 5)) }()
		if err := recv(t, ctx, added, "Add on a full queue to return"); err != nil {
			t.Fatal(err)
		}
		if st := w.Stats(); st.Dropped != 5 || st.Queued != 10 {
			t.Errorf("stats %+v: want 5 dropped, 10 queued", st)
		}
		close(gs.gate)
		if ev := recv(t, ctx, flushes, "the held flush"); ev.rows != 10 || ev.err != nil {
			t.Fatalf("flush %+v", ev)
		}
		// Room again.
		if err := w.Add(ctx, env.ID, 0, samplesEvery(base.Add(20*time.Second), time.Second, 2)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rows, _ := w.List(ctx, env.ID, time.Time{}, 0)
		if len(rows) != 12 {
			t.Errorf("%d rows stored, want 12 (10 + 2; 5 dropped)", len(rows))
		}
	})
}

func TestWriterIsolatesFailingEnvironment(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "fine", 0)
		w, flushes := newTestWriter(t, Config{Store: db, FlushInterval: 5 * time.Millisecond})
		base := time.Now().Add(-time.Hour)
		// Both in one flush; the store refuses the missing environment's.
		if err := w.Add(ctx, "env_missing", 0, samplesEvery(base, time.Second, 2)); err != nil {
			t.Fatal(err)
		}
		if err := w.Add(ctx, env.ID, 0, samplesEvery(base, time.Second, 3)); err != nil {
			t.Fatal(err)
		}
		for w.Stats().Failed < 2 {
			recv(t, ctx, flushes, "flushes until the bad rows are given up")
		}
		if st := w.Stats(); st.Written != 3 || st.Failed != 2 || st.Queued != 0 {
			t.Errorf("stats %+v: want 3 written, 2 failed", st)
		}
		rows, _ := w.List(ctx, env.ID, time.Time{}, 0)
		if len(rows) != 3 {
			t.Errorf("%d rows of the good environment stored, want 3", len(rows))
		}
	})
}

func TestWriterRetention(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB, userID string) {
		env := mustEnv(t, ctx, db, userID, "old", 0)
		now := time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
		var clock atomic.Pointer[time.Time]
		clock.Store(&now)
		deletions := make(chan int64, 100)
		w := NewWriter(Config{
			Store: db, Logger: testLogger(), Retention: 7 * 24 * time.Hour, RetentionInterval: 5 * time.Millisecond,
			Now: func() time.Time { return *clock.Load() },
			afterRetention: func(n int64, err error) {
				if err != nil {
					t.Errorf("retention: %v", err)
				}
				deletions <- n
			},
		})
		t.Cleanup(func() { w.Close() })
		if w.Retention() != 7*24*time.Hour {
			t.Errorf("Retention() = %v", w.Retention())
		}
		// Ten days of one sample a day, oldest ten days ago.
		var rows []store.ResourceUsage
		for d := range 10 {
			rows = append(rows, store.ResourceUsage{EnvironmentID: env.ID, Timestamp: now.Add(-time.Duration(10-d) * 24 * time.Hour).Add(time.Minute)})
		}
		if err := db.InsertResourceUsage(ctx, rows); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.RunRetention(rctx) }()
		if n := recv(t, ctx, deletions, "the first retention pass"); n != 3 {
			t.Errorf("first pass deleted %d, want 3 (10, 9 and 8 days old)", n)
		}
		// A day later, one more expires, at the next pass.
		later := now.Add(24 * time.Hour)
		clock.Store(&later)
		for total := int64(0); total < 1; {
			total += recv(t, ctx, deletions, "a later retention pass")
		}
		cancel()
		if err := recv(t, ctx, done, "RunRetention to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("RunRetention = %v, want context.Canceled", err)
		}
		left, err := db.ListResourceUsage(ctx, env.ID, time.Time{}, 0)
		if err != nil || len(left) != 6 {
			t.Errorf("%d rows left, %v; want 6", len(left), err)
		}
		if st := w.Stats(); st.Deleted != 4 {
			t.Errorf("stats %+v: want 4 deleted", st)
		}
	})
}

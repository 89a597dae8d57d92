package store_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestCountEnvironmentsByStatus(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		want := map[store.Status]int{}
		for _, s := range store.Statuses {
			want[s] = 0
		}
		got, err := db.CountEnvironmentsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("empty store: got %v, want every status at 0", got)
		}

		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		running := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "a", Status: store.StatusCreating})
		update(t, ctx, db, running.ID, func(e *store.Environment) { e.Status = store.StatusRunning })
		mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "b", Status: store.StatusCreating})
		stopped := mustEnv(t, ctx, db, store.Environment{UserID: bob.ID, Name: "a", Status: store.StatusCreating})
		update(t, ctx, db, stopped.ID, func(e *store.Environment) { e.Status = store.StatusStopped })
		// A deleted environment is no longer counted.
		gone := mustEnv(t, ctx, db, store.Environment{UserID: bob.ID, Name: "gone", Status: store.StatusCreating})
		update(t, ctx, db, gone.ID, func(e *store.Environment) {
			now := time.Now()
			e.Status, e.DeletedAt = store.StatusDeleting, &now
		})

		want[store.StatusRunning], want[store.StatusCreating], want[store.StatusStopped] = 1, 1, 1
		got, err = db.CountEnvironmentsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func TestPoolStats(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		if _, err := db.CountEnvironmentsByStatus(ctx); err != nil {
			t.Fatal(err)
		}
		stats := db.PoolStats()
		want := []string{"pool"}
		if db.Engine() == "sqlite" {
			want = []string{"reader", "writer"}
		}
		if len(stats) != len(want) {
			t.Fatalf("pools %v, want %v", stats, want)
		}
		open := 0
		for _, name := range want {
			s, ok := stats[name]
			if !ok {
				t.Fatalf("no pool %q in %v", name, stats)
			}
			open += s.OpenConnections
		}
		if open == 0 {
			t.Fatal("no connection open after a query")
		}
	})
}

// BenchmarkCountEnvironmentsByStatus is what a metrics scrape costs the
// store at 10,000 environments (1,000 running).
func BenchmarkCountEnvironmentsByStatus(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			ctx := b.Context()
			db, u := benchDB(b, engine)
			for i := range 10000 {
				status := store.StatusStopped
				if i%10 == 0 {
					status = store.StatusRunning
				}
				if _, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: fmt.Sprintf("env-%05d", i), Status: status}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				counts, err := db.CountEnvironmentsByStatus(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if counts[store.StatusRunning] != 1000 {
					b.Fatalf("counted %v", counts)
				}
			}
		})
	}
}

package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
)

// benchDB opens a fresh store on engine, closed when b ends, with one user.
func benchDB(b *testing.B, engine string) (*store.DB, store.User) {
	b.Helper()
	var url, path string
	if engine == "postgres" {
		url = pgtest.NewDatabase(b)
	} else {
		path = filepath.Join(b.TempDir(), "dev8.db")
	}
	db, err := store.Open(b.Context(), url, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	u, err := db.CreateUser(b.Context(), store.User{Email: "bench@example.com", Name: "bench", PasswordHash: "$2a$10$notreal"})
	if err != nil {
		b.Fatal(err)
	}
	return db, u
}

// BenchmarkTouchEnvironmentParallel is the store's share of activity
// ingestion: 64 supervisors reporting at once, each for its own
// environment, as in make bench's activity figure.
func BenchmarkTouchEnvironmentParallel(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			ctx := b.Context()
			db, u := benchDB(b, engine)
			const agents = 64
			ids := make([]string, agents)
			for i := range ids {
				e, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: fmt.Sprintf("env-%02d", i), Status: store.StatusRunning})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = e.ID
			}
			var next atomic.Int64
			b.SetParallelism((agents + 1) / 2) // × GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := ids[int(next.Add(1))%agents]
				for pb.Next() {
					if err := db.TouchEnvironment(ctx, id, time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "touches/s")
		})
	}
}

// BenchmarkGetEnvironmentParallel is the store's share of GET
// /environments/{id} from 16 clients, among 1,000 environments.
func BenchmarkGetEnvironmentParallel(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			ctx := b.Context()
			db, u := benchDB(b, engine)
			ids := make([]string, 1000)
			for i := range ids {
				e, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: fmt.Sprintf("env-%04d", i), Status: store.StatusRunning})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = e.ID
			}
			var next atomic.Int64
			b.SetParallelism(8) // × GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := ids[int(next.Add(1))%len(ids)]
					if _, err := db.GetEnvironment(ctx, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

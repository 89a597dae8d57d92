package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

// rawLoginFailureKeys lists login_failures' keys as a copy of the database
// would show them.
func rawLoginFailureKeys(t *testing.T, ctx context.Context, databaseURL, sqlitePath string) []string {
	t.Helper()
	driver, dsn := "sqlite", sqlitePath
	if databaseURL != "" {
		driver, dsn = "pgx", databaseURL
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.QueryContext(ctx, `SELECT key_hash FROM login_failures ORDER BY key_hash`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestLoginFailures: a record is kept by key as its SHA-256 only, read
// back as written (at the millisecond), forgotten when an update leaves
// nothing or on delete, and pruned once it expires.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url, path := location(t, engine)
			db := openAt(t, url, path)
			ctx := t.Context()
			const key = "email:ada@example.com\x00198.51.100.7"

			if f, err := db.LoginFailure(ctx, key); err != nil || !f.IsZero() {
				t.Fatalf("unknown key: %+v, %v; want the zero record", f, err)
			}
			t0 := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
			want := store.LoginFailure{Count: 5, LastFailure: t0, LockedUntil: t0.Add(time.Second), Reported: t0.Add(time.Second), Expires: t0.Add(time.Hour)}
			err := db.UpdateLoginFailure(ctx, key, func(f *store.LoginFailure) {
				if !f.IsZero() {
					t.Errorf("a new key's record: %+v, want zero", *f)
				}
				*f = want
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.LoginFailure(ctx, key)
			if err != nil || got != want {
				t.Fatalf("LoginFailure = %+v, %v; want %+v", got, err, want)
			}
			// Sub-millisecond parts are dropped, as the columns keep.
			err = db.UpdateLoginFailure(ctx, key, func(f *store.LoginFailure) {
				if *f != want {
					t.Errorf("update saw %+v, want %+v", *f, want)
				}
				f.Count++
				f.LastFailure = f.LastFailure.Add(1500 * time.Microsecond)
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := db.LoginFailure(ctx, key); got.Count != 6 || !got.LastFailure.Equal(t0.Add(time.Millisecond)) {
				t.Fatalf("after the update: %+v; want 6 failures, the last at %v", got, t0.Add(time.Millisecond))
			}

			sum := sha256.Sum256([]byte(key))
			if keys := rawLoginFailureKeys(t, ctx, url, path); len(keys) != 1 || keys[0] != hex.EncodeToString(sum[:]) {
				t.Fatalf("stored keys %q; want the key's SHA-256 alone", keys)
			}

			// An update that leaves nothing forgets the key.
			if err := db.UpdateLoginFailure(ctx, key, func(f *store.LoginFailure) { *f = store.LoginFailure{} }); err != nil {
				t.Fatal(err)
			}
			if keys := rawLoginFailureKeys(t, ctx, url, path); len(keys) != 0 {
				t.Fatalf("a zero record was kept: %q", keys)
			}

			// Delete, and the prune of expired records only.
			for i, exp := range []time.Time{t0.Add(-time.Second), t0, t0.Add(time.Second)} {
				if err := db.UpdateLoginFailure(ctx, string(rune('a'+i)), func(f *store.LoginFailure) { f.Count, f.Expires = 1, exp }); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.DeleteLoginFailure(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if err := db.DeleteLoginFailure(ctx, "no such key"); err != nil {
				t.Fatal(err)
			}
			if f, _ := db.LoginFailure(ctx, "c"); !f.IsZero() {
				t.Fatalf("deleted key: %+v", f)
			}
			if n, err := db.DeleteExpiredLoginFailures(ctx, t0); err != nil || n != 1 {
				t.Fatalf("DeleteExpiredLoginFailures = %d, %v; want 1", n, err)
			}
			if a, _ := db.LoginFailure(ctx, "a"); !a.IsZero() {
				t.Fatalf("expired record kept: %+v", a)
			}
			if b, _ := db.LoginFailure(ctx, "b"); b.Count != 1 {
				t.Fatalf("a record expiring now was pruned: %+v", b)
			}
		})
	}
}

// TestLoginFailuresConcurrent: updates of one key at once, through two
// handles on one database as two replicas have, are each counted, also
// while the key is being deleted (a successful login) in between.
func TestLoginFailuresConcurrent(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url, path := location(t, engine)
			replicas := []*store.DB{openAt(t, url, path), openAt(t, url, path)}
			ctx := t.Context()
			const goroutines, each = 8, 25
			var wg sync.WaitGroup
			for g := range goroutines {
				db := replicas[g%len(replicas)]
				wg.Go(func() {
					for range each {
						if err := db.UpdateLoginFailure(ctx, "counted", func(f *store.LoginFailure) { f.Count++ }); err != nil {
							t.Error(err)
							return
						}
						// Another key, deleted and counted at once: neither
						// may fail for the other.
						if g%2 == 0 {
							err := db.DeleteLoginFailure(ctx, "churn")
							if err != nil {
								t.Error(err)
								return
							}
						} else if err := db.UpdateLoginFailure(ctx, "churn", func(f *store.LoginFailure) { f.Count++ }); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for _, db := range replicas {
				if f, err := db.LoginFailure(ctx, "counted"); err != nil || f.Count != goroutines*each {
					t.Fatalf("%d concurrent updates counted %d (%v)", goroutines*each, f.Count, err)
				}
			}
		})
	}
}

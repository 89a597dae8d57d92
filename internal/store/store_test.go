package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// engines lists what every test runs against.
var engines = []string{"sqlite", "postgres"}

// location returns Open's arguments for a fresh, empty database.
func location(t *testing.T, engine string) (databaseURL, sqlitePath string) {
	t.Helper()
	if engine == "postgres" {
		return pgtest.NewDatabase(t), ""
	}
	return "", filepath.Join(t.TempDir(), "state", "dev8.db")
}

func openAt(t *testing.T, databaseURL, sqlitePath string) *store.DB {
	t.Helper()
	db, err := store.Open(wait.Context(t, time.Minute), databaseURL, sqlitePath)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// forEachEngine runs fn as a parallel subtest per engine, each with its own
// fresh database.
func forEachEngine(t *testing.T, fn func(t *testing.T, ctx context.Context, db *store.DB)) {
	t.Helper()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url, path := location(t, engine)
			db := openAt(t, url, path)
			if got := db.Engine(); got != engine {
				t.Fatalf("Engine() = %q, want %q", got, engine)
			}
			fn(t, wait.Context(t, time.Minute), db)
		})
	}
}

func mustUser(t *testing.T, ctx context.Context, db *store.DB, email string) store.User {
	t.Helper()
	u, err := db.CreateUser(ctx, store.User{Email: email, Name: email, PasswordHash: "$2a$10$notreal"})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", email, err)
	}
	return u
}

func mustEnv(t *testing.T, ctx context.Context, db *store.DB, e store.Environment) store.Environment {
	t.Helper()
	got, err := db.CreateEnvironment(ctx, e)
	if err != nil {
		t.Fatalf("CreateEnvironment(%q): %v", e.Name, err)
	}
	return got
}

func update(t *testing.T, ctx context.Context, db *store.DB, id string, fn func(*store.Environment)) store.Environment {
	t.Helper()
	e, err := db.UpdateEnvironment(ctx, id, func(e *store.Environment) error { fn(e); return nil })
	if err != nil {
		t.Fatalf("UpdateEnvironment(%s): %v", id, err)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func checkID(t *testing.T, id, prefix string) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 20 || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("ID %q: want %q + 20 lower-case base32 characters", id, prefix)
	}
}

func TestOpenRejectsBadArguments(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
	for _, tc := range []struct{ name, url, path string }{
		{"nothing", "", ""},
		{"mysql url", "mysql://user:secret@localhost/db", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(ctx, tc.url, tc.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the URL's password: %v", err)
			}
		})
	}
}

func TestOpenTwiceKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, time.Minute)
			url, path := location(t, engine)

			first, err := store.Open(ctx, url, path)
			if err != nil {
				t.Fatalf("first Open: %v", err)
			}
			u := mustUser(t, ctx, first, "keep@example.com")
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			// Migrations already applied must be skipped, not re-run.
			second := openAt(t, url, path)
			if err := second.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			got, err := second.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatalf("GetUser after reopen: %v", err)
			}
			if !reflect.DeepEqual(got, u) {
				t.Errorf("after reopen got %+v, want %+v", got, u)
			}
			// A third Open alongside a live one must not disturb it.
			third := openAt(t, url, path)
			if _, err := third.GetUser(ctx, u.ID); err != nil {
				t.Fatalf("GetUser via third handle: %v", err)
			}
		})
	}
}

func TestSQLiteCreatesParentDirectoryPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "dev8.db")
	openAt(t, "", path)
	info, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("parent dir mode %o, want 700", perm)
	}
}

func TestInstallationSecret(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		const n = 8
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := db.InstallationSecret(ctx, "agent-token-key", 32)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = v
			}()
		}
		wg.Wait()
		for i := range n {
			if len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
				t.Fatalf("concurrent first reads disagree: %x vs %x", got[i], got[0])
			}
		}
		other, err := db.InstallationSecret(ctx, "other", 16)
		if err != nil || len(other) != 16 || bytes.Equal(other, got[0][:16]) {
			t.Fatalf("second secret = %x, %v", other, err)
		}
	})
}

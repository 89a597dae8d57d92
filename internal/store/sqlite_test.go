package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// These look under the hood of the SQLite engine for settings the shared
// suite cannot see from outside.

func openSQLiteForTest(t *testing.T, path string) (context.Context, *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	db, err := Open(ctx, "", path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return ctx, db
}

func TestSQLiteConnectionSettings(t *testing.T) {
	t.Parallel()
	ctx, db := openSQLiteForTest(t, filepath.Join(t.TempDir(), "dev8.db"))
	for _, tc := range []struct {
		pool   string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "10000"},
		{"writer", "query_only", "0"},
		{"reader", "journal_mode", "wal"},
		{"reader", "foreign_keys", "1"},
		{"reader", "busy_timeout", "10000"},
		{"reader", "query_only", "1"},
	} {
		pool := db.writer
		if tc.pool == "reader" {
			pool = db.reader
		}
		var got string
		if err := pool.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", tc.pool, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s PRAGMA %s = %q, want %q", tc.pool, tc.pragma, got, tc.want)
		}
	}
	if _, err := db.reader.ExecContext(ctx, "DELETE FROM users"); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

func TestSQLiteStoresFixedWidthUTCTimes(t *testing.T) {
	t.Parallel()
	ctx, db := openSQLiteForTest(t, filepath.Join(t.TempDir(), "dev8.db"))
	u, err := db.CreateUser(ctx, User{Email: "t@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 7, 8, 9, 10, 11, 0, time.FixedZone("X", -7*3600))
	tok, err := db.CreateAPIToken(ctx, APIToken{UserID: u.ID, Hash: []byte{1}, ExpiresAt: when})
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := db.reader.QueryRowContext(ctx, "SELECT expires_at FROM api_tokens WHERE id = ?", tok.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	// Fixed width with every fraction digit, so text order is time order.
	if want := "2026-07-08T16:10:11.000000Z"; raw != want {
		t.Errorf("stored %q, want %q", raw, want)
	}
}

func TestSQLitePathWithAwkwardCharacters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dir with space?and#hash%20", "dev8.db")
	ctx, db := openSQLiteForTest(t, path)
	if _, err := db.CreateUser(ctx, User{Email: "p@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
}

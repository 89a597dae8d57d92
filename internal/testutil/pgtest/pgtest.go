// Package pgtest gives tests their own empty PostgreSQL database on the
// server named by DEV8_TEST_DATABASE_URL, so tests can run in parallel and
// never see each other's rows.
//
// Locally, start a throwaway server first:
//
//	eval "$(scripts/test-postgres.sh start)"
//	go test ./...
//	scripts/test-postgres.sh stop
//
// or run everything through `make test` / `scripts/test-postgres.sh run -- go test ./...`.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// EnvURL names the variable holding the URL of a PostgreSQL server on which
// the tests may create and drop databases (a superuser or a role with
// CREATEDB).
const EnvURL = "DEV8_TEST_DATABASE_URL"

// admins holds one connection pool per server URL for the life of the test
// binary, so a suite creating hundreds of databases does not also open and
// close hundreds of admin connections.
var (
	adminsMu sync.Mutex
	admins   = map[string]*sql.DB{}
)

func admin(serverURL string) (*sql.DB, error) {
	adminsMu.Lock()
	defer adminsMu.Unlock()
	if db, ok := admins[serverURL]; ok {
		return db, nil
	}
	db, err := sql.Open("pgx", serverURL)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	admins[serverURL] = db
	return db, nil
}

// NewDatabase creates a fresh, empty database and returns its URL. The
// database is dropped (WITH (FORCE), so connections left open do not stop
// it) when the test and its subtests finish.
//
// Without DEV8_TEST_DATABASE_URL the test is skipped, or fails when CI is
// set: CI must exercise PostgreSQL, not quietly skip it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	serverURL := os.Getenv(EnvURL)
	if serverURL == "" {
		const msg = EnvURL + " is not set, so PostgreSQL tests cannot run. " +
			"Run `make test`, or start a throwaway server with " +
			"`eval \"$(scripts/test-postgres.sh start)\"` before `go test`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL may hold a password, so it is not printed.
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	db, err := admin(serverURL)
	if err != nil {
		t.Fatalf("pgtest: open admin connection: %v", err)
	}

	var b [8]byte
	rand.Read(b[:])
	name := "dev8_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// name is made of [a-z0-9_] only, so it needs no quoting.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

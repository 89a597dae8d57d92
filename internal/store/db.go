// Package store is Dev8's persistence layer: one set of methods over either an
// embedded SQLite file or PostgreSQL. Nothing outside this package knows which
// engine it runs on, and no SQL lives outside it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// sqliteBusyTimeout bounds how long a SQLite connection waits for a lock held
// by another process (a second dev8 process on the same file). Writers inside
// this process never wait on it: they queue for the single writer connection.
const sqliteBusyTimeout = 10 * time.Second

// DB is the store. It is safe for concurrent use.
type DB struct {
	engine string
	// databaseURL is PostgreSQL's, for the connections Listen holds
	// outside the pool. It may carry a password: never logged.
	databaseURL string

	// writer runs every statement that writes. On SQLite it holds exactly one
	// connection, so concurrent writers queue inside database/sql instead of
	// racing for SQLite's write lock and failing with SQLITE_BUSY; its
	// transactions begin IMMEDIATE so the lock is taken up front rather than
	// upgraded from a read mid-transaction (an upgrade can fail without
	// waiting). On PostgreSQL it is the one pool and reader is the same value.
	writer *sql.DB
	// reader serves statements that only read. On SQLite, WAL lets these run
	// next to the writer on their own connections.
	reader *sql.DB

	touches touchBatcher // TouchEnvironment's group commit (touch.go)
	stmts   stmtCache    // SQLite's prepared statements (stmtcache.go)
}

// Open connects to PostgreSQL when databaseURL is non-empty (postgres:// or
// postgresql://), otherwise to the SQLite file at sqlitePath (its parent
// directory is created 0700). It applies pending migrations before returning.
func Open(ctx context.Context, databaseURL, sqlitePath string) (*DB, error) {
	var (
		db  *DB
		err error
	)
	if databaseURL != "" {
		db, err = openPostgres(ctx, databaseURL)
	} else {
		db, err = openSQLite(ctx, sqlitePath)
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", db.engine, err)
	}
	return db, nil
}

func openPostgres(ctx context.Context, databaseURL string) (*DB, error) {
	// The URL may carry a password, so it never appears in an error.
	if !strings.HasPrefix(databaseURL, "postgres://") && !strings.HasPrefix(databaseURL, "postgresql://") {
		return nil, errors.New("store: database URL must start with postgres:// or postgresql://")
	}
	pool, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	pool.SetMaxOpenConns(25)
	pool.SetMaxIdleConns(25)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to postgres: %w", err)
	}
	return &DB{engine: enginePostgres, writer: pool, reader: pool, databaseURL: databaseURL}, nil
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: neither a database URL nor a SQLite path was given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("store: create sqlite directory: %w", err)
	}

	busy := "busy_timeout(" + strconv.FormatInt(sqliteBusyTimeout.Milliseconds(), 10) + ")"
	writerParams := url.Values{
		// synchronous=NORMAL in WAL mode cannot corrupt the file; it saves an
		// fsync per commit at the price of the last commits on a power cut
		// (not on a process crash).
		"_pragma": {busy, "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}
	writer, err := sql.Open("sqlite", sqliteDSN(abs, writerParams))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// Connecting the writer first creates the file and switches it to WAL
	// (persistent in the file), which the read-only connections rely on.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}

	// query_only makes an accidental write through the read pool fail loudly
	// instead of silently competing with the writer for the lock.
	readerParams := url.Values{"_pragma": {busy, "foreign_keys(1)", "query_only(1)"}}
	reader, err := sql.Open("sqlite", sqliteDSN(abs, readerParams))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	return &DB{engine: engineSQLite, writer: writer, reader: reader}, nil
}

// sqliteDSN builds a file: URI so that any character in the path (?, #, %)
// is escaped rather than taken for the start of the parameters.
func sqliteDSN(absPath string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(absPath), RawQuery: params.Encode()}
	return u.String()
}

// Engine reports which engine the store runs on: "sqlite" or "postgres".
func (db *DB) Engine() string { return db.engine }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if db.reader != db.writer {
		if err := db.reader.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
	}
	return nil
}

// Close closes every connection.
func (db *DB) Close() error {
	err := errors.Join(db.closeStatements(), db.writer.Close())
	if db.reader != db.writer {
		err = errors.Join(err, db.reader.Close())
	}
	return err
}

// q adapts a query written with ? placeholders to the engine.
func (db *DB) q(query string) string {
	if db.engine == enginePostgres {
		return rebind(query)
	}
	return query
}

// rebind rewrites ? placeholders as PostgreSQL's $1, $2, ... Question marks
// inside quoted literals or identifiers are left alone.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			// A doubled quote ('') closes and reopens, which this handles
			// without special-casing it.
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// writeTx runs fn in a transaction on the writer and commits if fn returns
// nil. fn must not call other DB methods that write: on SQLite the writer has
// a single connection, which fn's transaction already holds.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Also covers a panic in fn; after Commit it is a no-op.
	defer tx.Rollback() //nolint:errcheck
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// now is the store's clock, already at the precision both engines keep.
func now() time.Time { return normTime(time.Now()) }

// collect scans every row of a query. It takes QueryContext's results as they
// come so call sites stay one expression.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

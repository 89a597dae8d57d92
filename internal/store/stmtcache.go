package store

import (
	"context"
	"database/sql"
	"sync"
)

// SQLite parses every statement it is given unless it is prepared, and
// parsing was the largest single cost of a GET of one environment (14 % of
// the server's CPU under load). So on SQLite every statement the store
// runs outside a transaction goes through a prepared *sql.Stmt, made once
// per query text and pool (database/sql prepares it on each connection the
// first time it runs there). pgx caches prepared statements per connection
// by itself, so PostgreSQL runs the queries as they are.

// maxCachedStatements bounds the cache; the store's queries are a fixed
// set of texts, so only a bug building texts from values could reach it,
// and past it statements simply run unprepared.
const maxCachedStatements = 512

type stmtKey struct {
	pool  *sql.DB
	query string
}

type stmtCache struct {
	mu    sync.Mutex
	stmts map[stmtKey]*sql.Stmt
}

// prepared returns the cached statement for query on pool, or nil when
// the query should run unprepared.
func (db *DB) prepared(ctx context.Context, pool *sql.DB, query string) *sql.Stmt {
	if db.engine != engineSQLite {
		return nil
	}
	c := &db.stmts
	key := stmtKey{pool, query}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stmts[key]; ok {
		return s
	}
	if len(c.stmts) >= maxCachedStatements {
		return nil
	}
	// Preparing under the lock is brief (SQLite parses in microseconds)
	// and keeps two callers from preparing the same text twice.
	s, err := pool.PrepareContext(ctx, query)
	if err != nil {
		// Run it unprepared: the error, if it is one, surfaces there.
		return nil
	}
	if c.stmts == nil {
		c.stmts = map[stmtKey]*sql.Stmt{}
	}
	c.stmts[key] = s
	return s
}

func (db *DB) query(ctx context.Context, pool *sql.DB, query string, args ...any) (*sql.Rows, error) {
	if s := db.prepared(ctx, pool, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return pool.QueryContext(ctx, query, args...)
}

func (db *DB) queryRow(ctx context.Context, pool *sql.DB, query string, args ...any) *sql.Row {
	if s := db.prepared(ctx, pool, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return pool.QueryRowContext(ctx, query, args...)
}

func (db *DB) exec(ctx context.Context, pool *sql.DB, query string, args ...any) (sql.Result, error) {
	if s := db.prepared(ctx, pool, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return pool.ExecContext(ctx, query, args...)
}

// closeStatements closes every cached statement (before the pools close).
func (db *DB) closeStatements() error {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for k, s := range c.stmts {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, k)
	}
	return first
}

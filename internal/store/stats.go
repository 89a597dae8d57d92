package store

import (
	"context"
	"database/sql"
)

// CountEnvironmentsByStatus counts the live environments in each status
// (every status is present, zero or not). It is one grouped COUNT over the
// status index, cheap enough to run at every metrics scrape.
func (db *DB) CountEnvironmentsByStatus(ctx context.Context) (map[Status]int, error) {
	rows, err := db.query(ctx, db.reader,
		`SELECT status, COUNT(*) FROM environments WHERE deleted_at IS NULL GROUP BY status`)
	type count struct {
		status Status
		n      int
	}
	counts, err := collect(rows, err, func(s scanner) (count, error) {
		var c count
		err := s.Scan(&c.status, &c.n)
		return c, err
	})
	if err != nil {
		return nil, wrapErr("count environments by status", err)
	}
	out := make(map[Status]int, len(Statuses))
	for _, s := range Statuses {
		out[s] = 0
	}
	for _, c := range counts {
		out[c.status] += c.n
	}
	return out, nil
}

// PoolStats reports the connection pools' statistics by pool: "writer" and
// "reader" on SQLite (one writer connection that writes queue for, and the
// readers beside it), "pool" on PostgreSQL.
func (db *DB) PoolStats() map[string]sql.DBStats {
	if db.reader == db.writer {
		return map[string]sql.DBStats{"pool": db.writer.Stats()}
	}
	return map[string]sql.DBStats{"writer": db.writer.Stats(), "reader": db.reader.Stats()}
}

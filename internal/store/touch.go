package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"
)

// touchBatcher turns concurrent TouchEnvironment calls into one write (group
// commit). Activity reports arrive from every running workspace at once and
// each only moves a timestamp forward; one statement and one commit for all
// of the reports that arrived while the previous write was running costs
// the database a fraction of one write per report, and every caller still
// returns only once its own touch is committed.
//
// At most one batch is being written at a time; reports that arrive
// meanwhile collect in the next one.
type touchBatcher struct {
	mu       sync.Mutex
	next     *touchBatch // collecting; nil when nothing waits
	flushing bool
}

type touchBatch struct {
	at    map[string]time.Time // environment id → latest time asked for
	done  chan struct{}        // closed once found and err are set
	found map[string]bool      // ids whose live row was matched
	err   error
}

// touchBatchLimit bounds the ids in one statement (PostgreSQL arrays and
// SQLite transactions both take more; this keeps one write short).
const touchBatchLimit = 1000

// join adds a touch to the collecting batch. lead is true when the caller
// must write the batch itself, because no write is running.
func (tb *touchBatcher) join(id string, at time.Time) (b *touchBatch, lead bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.next == nil {
		tb.next = &touchBatch{at: map[string]time.Time{}, done: make(chan struct{})}
	}
	b = tb.next
	if prev, ok := b.at[id]; !ok || at.After(prev) {
		b.at[id] = at
	}
	if tb.flushing {
		return b, false
	}
	tb.flushing = true
	tb.next = nil
	return b, true
}

// TouchEnvironment records access at at. last_accessed_at only ever moves
// forward, so a late or reordered report cannot make a busy workspace look
// idle. ErrNotFound if there is no live environment id.
func (db *DB) TouchEnvironment(ctx context.Context, id string, at time.Time) error {
	b, lead := db.touches.join(id, at)
	if lead {
		db.writeTouches(b)
	} else {
		select {
		case <-b.done:
		case <-ctx.Done():
			// The touch is still written with its batch.
			return ctx.Err()
		}
	}
	if b.err != nil {
		return wrapErr("touch environment", b.err)
	}
	if !b.found[id] {
		return wrapErr("touch environment", ErrNotFound)
	}
	return nil
}

// writeTouches writes b, then hands the batch that collected meanwhile to a
// new goroutine, so that the caller who led b returns as soon as b is done.
func (db *DB) writeTouches(b *touchBatch) {
	// Not the leader's request context: the batch carries other callers'
	// touches, which must not fail because the leader's client went away.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b.found, b.err = db.touchAll(ctx, b.at)
	cancel()
	close(b.done)

	tb := &db.touches
	tb.mu.Lock()
	next := tb.next
	tb.next = nil
	if next == nil {
		tb.flushing = false
	}
	tb.mu.Unlock()
	if next != nil {
		go db.writeTouches(next)
	}
}

// touchAll moves last_accessed_at forward for every id in at and reports
// which ids matched a live row. Ids are written in sorted order, so two
// writers can never wait on each other's rows.
func (db *DB) touchAll(ctx context.Context, at map[string]time.Time) (map[string]bool, error) {
	ids := make([]string, 0, len(at))
	for id := range at {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	found := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(ids, touchBatchLimit) {
		var err error
		if db.engine == enginePostgres {
			err = db.touchPostgres(ctx, chunk, at, found)
		} else {
			err = db.touchSQLite(ctx, chunk, at, found)
		}
		if err != nil {
			return nil, err
		}
	}
	return found, nil
}

// touchPostgres: one statement for the whole chunk.
func (db *DB) touchPostgres(ctx context.Context, ids []string, at map[string]time.Time, found map[string]bool) error {
	times := make([]time.Time, len(ids))
	for i, id := range ids {
		times[i] = normTime(at[id])
	}
	rows, err := db.query(ctx, db.writer, `
		UPDATE environments AS e
		SET last_accessed_at = GREATEST(e.last_accessed_at, v.at)
		FROM unnest($1::text[], $2::timestamptz[]) AS v(id, at)
		WHERE e.id = v.id AND e.deleted_at IS NULL
		RETURNING e.id`, ids, times)
	if err != nil {
		return err
	}
	return markFound(rows, found)
}

// touchSQLite: one transaction (one commit) for the whole chunk; SQLite's
// statements are cheap, its commits are not.
func (db *DB) touchSQLite(ctx context.Context, ids []string, at map[string]time.Time, found map[string]bool) (err error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The CASE keeps the row matched (and so counted) even when at is not
	// later, which tells "not newer" apart from "no such row".
	stmt, err := tx.PrepareContext(ctx, `
		UPDATE environments
		SET last_accessed_at = CASE WHEN last_accessed_at < ? THEN ? ELSE last_accessed_at END
		WHERE id = ? AND deleted_at IS NULL`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, id := range ids {
		t := db.timeArg(at[id])
		res, err := stmt.ExecContext(ctx, t, t, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		found[id] = n > 0
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func markFound(rows *sql.Rows, found map[string]bool) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		found[id] = true
	}
	return rows.Err()
}

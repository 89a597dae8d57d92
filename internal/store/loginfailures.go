package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// LoginFailure is a login throttle's record of one key (an account from an
// address, an address, an account), kept in the database so that every
// replica counts the same failures and honours the same lock. The rules
// that change it are ratelimit.Failures'; the store only keeps it.
type LoginFailure struct {
	// Count is the failures in the current window, LastFailure the latest.
	Count       int
	LastFailure time.Time
	// LockedUntil is when the latest lock ends; Reported is the
	// LockedUntil of the lock whose first refusal was reported.
	LockedUntil time.Time
	Reported    time.Time
	// Expires is when the record stops counting (its window and its lock
	// are over): DeleteExpiredLoginFailures forgets it after then.
	Expires time.Time
}

// IsZero reports whether f records nothing: such a record is not kept.
func (f LoginFailure) IsZero() bool { return f == LoginFailure{} }

// loginFailureKey is what is stored of key: its SHA-256, since keys hold
// email and client addresses, which the table has no need to reveal.
func loginFailureKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// msOf and timeOfMS map times to the columns' milliseconds, the zero time
// to 0 both ways.
func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOfMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

const loginFailureColumns = `failures, last_failure_ms, locked_until_ms, reported_ms, expires_ms`

func scanLoginFailure(row scanner) (LoginFailure, error) {
	var (
		f                            LoginFailure
		last, locked, reported, exps int64
	)
	if err := row.Scan(&f.Count, &last, &locked, &reported, &exps); err != nil {
		return LoginFailure{}, err
	}
	f.LastFailure, f.LockedUntil, f.Reported, f.Expires = timeOfMS(last), timeOfMS(locked), timeOfMS(reported), timeOfMS(exps)
	return f, nil
}

// LoginFailure returns key's record, the zero record when it has none.
// Times come back at millisecond precision.
func (db *DB) LoginFailure(ctx context.Context, key string) (LoginFailure, error) {
	f, err := scanLoginFailure(db.reader.QueryRowContext(ctx, db.q(`SELECT `+loginFailureColumns+` FROM login_failures WHERE key_hash = ?`), loginFailureKey(key)))
	if errors.Is(err, sql.ErrNoRows) {
		return LoginFailure{}, nil
	}
	if err != nil {
		return LoginFailure{}, fmt.Errorf("store: login failures: %w", err)
	}
	return f, nil
}

// UpdateLoginFailure passes key's record (the zero record when it has
// none) to change and keeps what change leaves in it, or forgets the key
// when that is the zero record. It is one transaction that holds the
// record's row locked from the read to the write (on SQLite, the
// database's one writer), so updates of one key from several replicas at
// once each see the one before: none is lost. change runs once, inside the
// transaction: it must be quick and must not use the store.
func (db *DB) UpdateLoginFailure(ctx context.Context, key string, change func(*LoginFailure)) error {
	hash := loginFailureKey(key)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		// One statement reads the row, making it first when missing, and
		// locks it until the commit (an upsert's update takes the row's
		// lock; on SQLite the transaction holds the one writer): two
		// replicas failing a key at once queue on it, and a Reset that
		// deletes it meanwhile cannot leave this transaction without a
		// row.
		f, err := scanLoginFailure(tx.QueryRowContext(ctx, db.q(`INSERT INTO login_failures (key_hash, `+loginFailureColumns+`) VALUES (?, 0, 0, 0, 0, 0)
			ON CONFLICT (key_hash) DO UPDATE SET failures = login_failures.failures
			RETURNING `+loginFailureColumns), hash))
		if err != nil {
			return err
		}
		change(&f)
		if f.IsZero() {
			_, err = tx.ExecContext(ctx, db.q(`DELETE FROM login_failures WHERE key_hash = ?`), hash)
			return err
		}
		_, err = tx.ExecContext(ctx, db.q(`UPDATE login_failures SET failures = ?, last_failure_ms = ?, locked_until_ms = ?, reported_ms = ?, expires_ms = ?
			WHERE key_hash = ?`), f.Count, msOf(f.LastFailure), msOf(f.LockedUntil), msOf(f.Reported), msOf(f.Expires), hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: update login failures: %w", err)
	}
	return nil
}

// DeleteLoginFailure forgets key's record (a successful login).
func (db *DB) DeleteLoginFailure(ctx context.Context, key string) error {
	if _, err := db.writer.ExecContext(ctx, db.q(`DELETE FROM login_failures WHERE key_hash = ?`), loginFailureKey(key)); err != nil {
		return fmt.Errorf("store: delete login failures: %w", err)
	}
	return nil
}

// DeleteExpiredLoginFailures forgets the records that expired before now,
// and says how many there were.
func (db *DB) DeleteExpiredLoginFailures(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.writer.ExecContext(ctx, db.q(`DELETE FROM login_failures WHERE expires_ms < ?`), msOf(now))
	if err != nil {
		return 0, fmt.Errorf("store: prune login failures: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: prune login failures: %w", err)
	}
	return n, nil
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ActiveStatuses are the statuses that count against a user's limit of
// running environments: running, and on their way there. STOPPING does not
// count (its owner has let it go), nor does ERROR (no compute is charged).
var ActiveStatuses = []Status{StatusCreating, StatusStarting, StatusRunning}

func isActive(s Status) bool {
	return s == StatusCreating || s == StatusStarting || s == StatusRunning
}

// EnvironmentLimits bound one user's environments. 0 is unlimited.
type EnvironmentLimits struct {
	UserID string // whose environments these limits bound
	// MaxEnvironments counts every live environment but those being
	// deleted; MaxActive counts those in ActiveStatuses.
	MaxEnvironments int
	MaxActive       int
}

// QuotaExceededError is returned when a write would take a user past one of
// their EnvironmentLimits.
type QuotaExceededError struct {
	Limit string // "environments" or "running environments"
	Max   int
	InUse int
}

func (e *QuotaExceededError) Error() string {
	return fmt.Sprintf("quota exceeded: %d of at most %d %s in use", e.InUse, e.Max, e.Limit)
}

// EnvironmentCounts is how many environments a user has, as the limits
// count them.
type EnvironmentCounts struct {
	Environments int // live, not DELETING
	Active       int // in ActiveStatuses
}

// CountEnvironments counts userID's environments as EnvironmentLimits does.
func (db *DB) CountEnvironments(ctx context.Context, userID string) (EnvironmentCounts, error) {
	c, err := countEnvironments(ctx, db, db.reader, userID, "")
	return c, wrapErr("count environments", err)
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// countEnvironments counts userID's environments, leaving out excludeID.
func countEnvironments(ctx context.Context, db *DB, q querier, userID, excludeID string) (EnvironmentCounts, error) {
	var c EnvironmentCounts
	args := []any{string(StatusDeleting)}
	for _, s := range ActiveStatuses {
		args = append(args, string(s))
	}
	args = append(args, userID, excludeID)
	err := q.QueryRowContext(ctx, db.q(`
		SELECT
			COALESCE(SUM(CASE WHEN status <> ? THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN status IN (`+placeholders(len(ActiveStatuses))+`) THEN 1 ELSE 0 END), 0)
		FROM environments WHERE user_id = ? AND deleted_at IS NULL AND id <> ?`), args...).Scan(&c.Environments, &c.Active)
	return c, err
}

// lockUserQuota serialises the quota checks of one user: on PostgreSQL it
// locks the user's row (FOR NO KEY UPDATE conflicts with itself but not
// with the key-share locks foreign keys take); on SQLite the transaction
// already holds the database's only write lock.
func (db *DB) lockUserQuota(ctx context.Context, tx *sql.Tx, userID string) error {
	if db.engine != enginePostgres {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, db.q(`SELECT 1 FROM users WHERE id = ? FOR NO KEY UPDATE`), userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// CreateEnvironmentWithinLimits is CreateEnvironment that first checks, in
// the same transaction and with the user's quota locked, that the new
// environment keeps e.UserID within l. Over a limit it returns a
// *QuotaExceededError and stores nothing.
func (db *DB) CreateEnvironmentWithinLimits(ctx context.Context, e Environment, l EnvironmentLimits) (Environment, error) {
	return db.createEnvironment(ctx, e, &l)
}

// createEnvironment is CreateEnvironment, and with l also the quota check
// of CreateEnvironmentWithinLimits, in the same transaction.
func (db *DB) createEnvironment(ctx context.Context, e Environment, l *EnvironmentLimits) (Environment, error) {
	if l != nil && l.UserID != e.UserID {
		return Environment{}, fmt.Errorf("store: create environment: limits are for user %q, the environment is %q's", l.UserID, e.UserID)
	}
	args, err := db.newEnvironmentArgs(&e)
	if err != nil {
		return Environment{}, wrapErr("create environment", err)
	}

	insert := db.q(insertEnvironment(len(args)))
	var quotaErr *QuotaExceededError
	if l == nil {
		// Nothing to count: one statement, prepared once.
		_, err = db.exec(ctx, db.writer, insert, args...)
	} else {
		err = db.writeTx(ctx, func(tx *sql.Tx) error {
			if err := db.lockUserQuota(ctx, tx, e.UserID); err != nil {
				return err
			}
			c, err := countEnvironments(ctx, db, tx, e.UserID, "")
			if err != nil {
				return err
			}
			if quotaErr = checkLimits(*l, c, e.Status != StatusDeleting, isActive(e.Status)); quotaErr != nil {
				return quotaErr
			}
			_, err = tx.ExecContext(ctx, insert, args...)
			return err
		})
	}
	if quotaErr != nil {
		return Environment{}, quotaErr
	}
	if err != nil {
		return Environment{}, wrapErr("create environment", err)
	}
	return e, nil
}

// checkLimits reports the first limit that adding one environment (counted
// as live and/or active as the flags say) to c would exceed.
func checkLimits(l EnvironmentLimits, c EnvironmentCounts, addsLive, addsActive bool) *QuotaExceededError {
	if addsLive && l.MaxEnvironments > 0 && c.Environments >= l.MaxEnvironments {
		return &QuotaExceededError{Limit: "environments", Max: l.MaxEnvironments, InUse: c.Environments}
	}
	if addsActive && l.MaxActive > 0 && c.Active >= l.MaxActive {
		return &QuotaExceededError{Limit: "running environments", Max: l.MaxActive, InUse: c.Active}
	}
	return nil
}

// UpdateEnvironmentWithinLimits is UpdateEnvironment that also refuses,
// with a *QuotaExceededError, a change that makes an environment active
// (see ActiveStatuses) when its owner already has l.MaxActive active ones.
// The count and the write are one transaction with the owner's quota
// locked, so concurrent starts cannot overshoot. Changes that do not make
// the environment active are never refused.
func (db *DB) UpdateEnvironmentWithinLimits(ctx context.Context, id string, l EnvironmentLimits, fn func(*Environment) error) (Environment, error) {
	return db.updateEnvironment(ctx, id, &l, fn)
}

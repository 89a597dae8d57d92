package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrLastAdmin is returned by UpdateManagedUser when the change would leave
// the installation without an active (unsuspended) admin.
var ErrLastAdmin = errors.New("the installation must keep at least one active admin")

// UserQuota is an admin's per-user override of the server's quotas. A nil
// field takes the server's default; 0 means unlimited.
type UserQuota struct {
	MaxEnvironments        *int
	MaxRunningEnvironments *int
	MonthlyBudgetUSD       *float64
}

// ManagedUser is a user as an admin manages it: the user and its quota
// overrides.
type ManagedUser struct {
	User
	Quota UserQuota
}

// UserFilter selects users for ListUsers.
type UserFilter struct {
	// Email matches users whose email contains it (case-insensitive).
	Email string
	Role  Role // empty: every role
	// Suspended, when set, keeps only suspended (true) or active (false)
	// users.
	Suspended *bool
	Limit     int // <= 0: no limit
	Offset    int
}

const userQuotaColumns = `max_environments, max_running_environments, monthly_budget_usd`

func scanManagedUser(s scanner) (ManagedUser, error) {
	var (
		maxEnvs, maxRunning sql.NullInt64
		budget              sql.NullFloat64
	)
	u, err := scanUser(s, &maxEnvs, &maxRunning, &budget)
	if err != nil {
		return ManagedUser{}, err
	}
	acc := ManagedUser{User: u}
	if maxEnvs.Valid {
		n := int(maxEnvs.Int64)
		acc.Quota.MaxEnvironments = &n
	}
	if maxRunning.Valid {
		n := int(maxRunning.Int64)
		acc.Quota.MaxRunningEnvironments = &n
	}
	if budget.Valid {
		b := budget.Float64
		acc.Quota.MonthlyBudgetUSD = &b
	}
	return acc, nil
}

// likeEscape escapes LIKE's wildcards so s matches literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListUsers returns the users matching f, oldest first, and how many match
// in total before Limit and Offset.
func (db *DB) ListUsers(ctx context.Context, f UserFilter) ([]ManagedUser, int, error) {
	where := " WHERE 1 = 1"
	var args []any
	if f.Email != "" {
		// Emails are stored lower-cased, so lower-casing the pattern makes
		// the match case-insensitive on PostgreSQL too.
		where += ` AND email LIKE ? ESCAPE '\'`
		args = append(args, "%"+likeEscape(strings.ToLower(f.Email))+"%")
	}
	if f.Role != "" {
		where += " AND role = ?"
		args = append(args, string(f.Role))
	}
	if f.Suspended != nil {
		if *f.Suspended {
			where += " AND suspended_at IS NOT NULL"
		} else {
			where += " AND suspended_at IS NULL"
		}
	}
	var total int
	if err := db.queryRow(ctx, db.reader, db.q(`SELECT COUNT(*) FROM users`+where), args...).Scan(&total); err != nil {
		return nil, 0, wrapErr("count users", err)
	}
	query := `SELECT ` + userColumns + `, ` + userQuotaColumns + ` FROM users` + where + ` ORDER BY created_at, id`
	pageArgs := slices.Clone(args)
	switch {
	case f.Limit > 0:
		query += " LIMIT ?"
		pageArgs = append(pageArgs, f.Limit)
	case f.Offset > 0 && db.engine == engineSQLite:
		query += " LIMIT -1" // SQLite only accepts OFFSET after a LIMIT
	}
	if f.Offset > 0 {
		query += " OFFSET ?"
		pageArgs = append(pageArgs, f.Offset)
	}
	rows, err := db.query(ctx, db.reader, db.q(query), pageArgs...)
	out, err := collect(rows, err, scanManagedUser)
	if err != nil {
		return nil, 0, wrapErr("list users", err)
	}
	return out, total, nil
}

// GetManagedUser returns the user id with its quota overrides, or
// ErrNotFound.
func (db *DB) GetManagedUser(ctx context.Context, id string) (ManagedUser, error) {
	acc, err := scanManagedUser(db.queryRow(ctx, db.reader,
		db.q(`SELECT `+userColumns+`, `+userQuotaColumns+` FROM users WHERE id = ?`), id))
	if err != nil {
		return ManagedUser{}, lookupErr("get user account", err)
	}
	return acc, nil
}

// UpdateManagedUser reads user id, lets fn change its role, suspension and
// quota overrides, and writes them back in one transaction. It returns the
// account as it was and as it is now.
//
// A change that would leave no active admin (demoting or suspending the
// last one, whoever asks) returns ErrLastAdmin and writes nothing. The check
// and the write are one transaction and, on PostgreSQL, the users table is
// locked against other writers for its duration, so two admins demoting
// each other at the same moment cannot both succeed. (SQLite's single
// writer connection serialises them already.)
//
// Only Role, SuspendedAt and Quota are written; other changes fn makes are
// ignored. If fn returns an error nothing is written and that error is
// returned unwrapped. fn must not call DB methods that write.
func (db *DB) UpdateManagedUser(ctx context.Context, id string, fn func(*ManagedUser) error) (before, after ManagedUser, err error) {
	var fnErr error
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		if db.engine == enginePostgres {
			// The same lock CreateUser takes to decide the first admin: it
			// conflicts with itself and with every row update, so the
			// admin count below cannot change before this commits.
			if _, err := tx.ExecContext(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		acc, err := scanManagedUser(tx.QueryRowContext(ctx,
			db.q(`SELECT `+userColumns+`, `+userQuotaColumns+` FROM users WHERE id = ?`), id))
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		before = acc
		next := acc
		next.Quota = UserQuota{
			MaxEnvironments:        clonePtr(acc.Quota.MaxEnvironments),
			MaxRunningEnvironments: clonePtr(acc.Quota.MaxRunningEnvironments),
			MonthlyBudgetUSD:       clonePtr(acc.Quota.MonthlyBudgetUSD),
		}
		next.SuspendedAt = clonePtr(acc.SuspendedAt)
		if err := fn(&next); err != nil {
			fnErr = err
			return err
		}
		if next.Role != RoleAdmin && next.Role != RoleMember {
			return fmt.Errorf("role %q is neither %q nor %q", next.Role, RoleAdmin, RoleMember)
		}
		if isActiveAdmin(acc.User) && !isActiveAdmin(next.User) {
			var others int
			err := tx.QueryRowContext(ctx, db.q(`
				SELECT COUNT(*) FROM users WHERE role = ? AND suspended_at IS NULL AND id <> ?`),
				string(RoleAdmin), id).Scan(&others)
			if err != nil {
				return err
			}
			if others == 0 {
				fnErr = ErrLastAdmin
				return ErrLastAdmin
			}
		}
		next.SuspendedAt = normTimePtr(next.SuspendedAt)
		next.UpdatedAt = now()
		_, err = tx.ExecContext(ctx, db.q(`
			UPDATE users SET role = ?, suspended_at = ?, max_environments = ?, max_running_environments = ?,
				monthly_budget_usd = ?, updated_at = ?
			WHERE id = ?`),
			string(next.Role), db.nullTimeArg(next.SuspendedAt), nullableArg(next.Quota.MaxEnvironments),
			nullableArg(next.Quota.MaxRunningEnvironments), nullableArg(next.Quota.MonthlyBudgetUSD),
			db.timeArg(next.UpdatedAt), id)
		if err != nil {
			return err
		}
		after = next
		return nil
	})
	if fnErr != nil {
		return ManagedUser{}, ManagedUser{}, fnErr
	}
	if err != nil {
		return ManagedUser{}, ManagedUser{}, wrapErr("update user "+id, err)
	}
	return before, after, nil
}

// isActiveAdmin: an admin whose credentials work.
func isActiveAdmin(u User) bool { return u.Role == RoleAdmin && u.SuspendedAt == nil }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// nullableArg maps nil to SQL NULL.
func nullableArg[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// ListEnvironmentsForCost returns every environment of userID that is live
// or was deleted at or after since, soft-deleted ones included, so that
// cost accrued this period by environments deleted since counts too.
func (db *DB) ListEnvironmentsForCost(ctx context.Context, userID string, since time.Time) ([]Environment, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT `+environmentColumns+` FROM environments
		WHERE user_id = ? AND (deleted_at IS NULL OR deleted_at >= ?)`), userID, db.timeArg(since))
	out, err := collect(rows, err, func(s scanner) (Environment, error) { return scanEnvironment(s) })
	return out, wrapErr("list environments for cost", err)
}

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

// environmentMutableColumns are the columns UpdateEnvironment writes: all but
// id, user_id and created_at. Their order matches environmentMutableArgs and
// scanEnvironment.
var environmentMutableColumns = []string{
	"name", "status", "status_reason",
	"runtime", "cloud_region", "runtime_ref",
	"template_name", "base_image", "instance_type", "cpu_cores", "memory_gb", "storage_gb",
	"environment_variables", "ports", "auto_stop_minutes",
	"vscode_url", "ssh_connection_string",
	"estimated_cost_per_hour", "total_cost", "running_since",
	"last_accessed_at", "stopped_at", "deleted_at", "updated_at",
	"agent_token_nonce", "resources", "node_selector",
}

var environmentColumns = "id, user_id, created_at, " + strings.Join(environmentMutableColumns, ", ")

func (db *DB) environmentMutableArgs(e *Environment) ([]any, error) {
	envVars, err := jsonArg(e.EnvironmentVariables)
	if err != nil {
		return nil, err
	}
	ports, err := jsonArg(e.Ports)
	if err != nil {
		return nil, err
	}
	resources, err := jsonArg(e.Resources)
	if err != nil {
		return nil, err
	}
	nodeSelector, err := jsonArg(e.NodeSelector)
	if err != nil {
		return nil, err
	}
	return []any{
		e.Name, string(e.Status), e.StatusReason,
		e.Runtime, e.CloudRegion, e.RuntimeRef,
		e.TemplateName, e.BaseImage, e.InstanceType, e.CPUCores, e.MemoryGB, e.StorageGB,
		envVars, ports, e.AutoStopMinutes,
		e.VSCodeURL, e.SSHConnectionString,
		e.EstimatedCostPerHour, e.TotalCost, db.nullTimeArg(e.RunningSince),
		db.timeArg(e.LastAccessedAt), db.nullTimeArg(e.StoppedAt), db.nullTimeArg(e.DeletedAt), db.timeArg(e.UpdatedAt),
		e.AgentTokenNonce, resources, nodeSelector,
	}, nil
}

func scanEnvironment(s scanner, extra ...any) (Environment, error) {
	var e Environment
	dest := append([]any{
		&e.ID, &e.UserID, timeCol{&e.CreatedAt},
		&e.Name, &e.Status, &e.StatusReason,
		&e.Runtime, &e.CloudRegion, &e.RuntimeRef,
		&e.TemplateName, &e.BaseImage, &e.InstanceType, &e.CPUCores, &e.MemoryGB, &e.StorageGB,
		jsonCol{&e.EnvironmentVariables}, jsonCol{&e.Ports}, &e.AutoStopMinutes,
		&e.VSCodeURL, &e.SSHConnectionString,
		&e.EstimatedCostPerHour, &e.TotalCost, nullTimeCol{&e.RunningSince},
		timeCol{&e.LastAccessedAt}, nullTimeCol{&e.StoppedAt}, nullTimeCol{&e.DeletedAt}, timeCol{&e.UpdatedAt},
		&e.AgentTokenNonce, jsonCol{&e.Resources}, jsonCol{&e.NodeSelector},
	}, extra...)
	err := s.Scan(dest...)
	return e, err
}

// normEnvironmentTimes makes e's times what a read would return.
func normEnvironmentTimes(e *Environment) {
	e.RunningSince = normTimePtr(e.RunningSince)
	e.LastAccessedAt = normTime(e.LastAccessedAt)
	e.StoppedAt = normTimePtr(e.StoppedAt)
	e.DeletedAt = normTimePtr(e.DeletedAt)
	e.CreatedAt = normTime(e.CreatedAt)
	e.UpdatedAt = normTime(e.UpdatedAt)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// CreateEnvironment stores a new environment. It assigns the ID when e.ID is
// empty, sets CreatedAt and UpdatedAt, sets LastAccessedAt when it is zero
// and Status to StatusCreating when it is empty. A live environment of the
// same user with the same name returns ErrConflict. It enforces no quota;
// CreateEnvironmentWithinLimits (quota.go) does.
func (db *DB) CreateEnvironment(ctx context.Context, e Environment) (Environment, error) {
	return db.createEnvironment(ctx, e, nil)
}

// newEnvironmentArgs fills in what CreateEnvironment promises (ID, Status,
// timestamps) and returns the INSERT's arguments.
func (db *DB) newEnvironmentArgs(e *Environment) ([]any, error) {
	if e.ID == "" {
		e.ID = newID("env_")
	}
	if e.Status == "" {
		e.Status = StatusCreating
	}
	t := now()
	e.CreatedAt, e.UpdatedAt = t, t
	if e.LastAccessedAt.IsZero() {
		e.LastAccessedAt = t
	}
	normEnvironmentTimes(e)
	args, err := db.environmentMutableArgs(e)
	if err != nil {
		return nil, err
	}
	return append([]any{e.ID, e.UserID, db.timeArg(e.CreatedAt)}, args...), nil
}

func insertEnvironment(nargs int) string {
	return `INSERT INTO environments (` + environmentColumns + `) VALUES (` + placeholders(nargs) + `)`
}

// GetEnvironment returns a live environment, or ErrNotFound when it does not
// exist or is soft-deleted.
func (db *DB) GetEnvironment(ctx context.Context, id string) (Environment, error) {
	e, err := scanEnvironment(db.queryRow(ctx, db.reader, db.q(
		`SELECT `+environmentColumns+` FROM environments WHERE id = ? AND deleted_at IS NULL`), id))
	if err != nil {
		return Environment{}, lookupErr("get environment", err)
	}
	return e, nil
}

// ListEnvironments returns the live environments matching f, newest first,
// and how many match in total before Limit and Offset.
func (db *DB) ListEnvironments(ctx context.Context, f EnvironmentFilter) ([]Environment, int, error) {
	where := " WHERE deleted_at IS NULL"
	var args []any
	if f.UserID != "" {
		where += " AND user_id = ?"
		args = append(args, f.UserID)
	}
	if len(f.Statuses) > 0 {
		where += " AND status IN (" + placeholders(len(f.Statuses)) + ")"
		for _, s := range f.Statuses {
			args = append(args, string(s))
		}
	}

	// The total is its own query: counting in the page query (a window
	// COUNT(*) OVER ()) makes the engine read and sort every matching row
	// to return a page of 50, which took ~650 ms at 10,000 environments.
	// The page itself walks the (user_id, created_at, id) index.
	var total int
	err := db.queryRow(ctx, db.reader, db.q(`SELECT COUNT(*) FROM environments`+where), args...).Scan(&total)
	if err != nil {
		return nil, 0, wrapErr("count environments", err)
	}
	query := `SELECT ` + environmentColumns + ` FROM environments` + where +
		` ORDER BY created_at DESC, id DESC`
	pageArgs := slices.Clone(args) // args is reused for the count below
	switch {
	case f.Limit > 0:
		query += " LIMIT ?"
		pageArgs = append(pageArgs, f.Limit)
	case f.Offset > 0 && db.engine == engineSQLite:
		// SQLite only accepts OFFSET after a LIMIT; -1 means none.
		query += " LIMIT -1"
	}
	if f.Offset > 0 {
		query += " OFFSET ?"
		pageArgs = append(pageArgs, f.Offset)
	}

	rows, err := db.query(ctx, db.reader, db.q(query), pageArgs...)
	out, err := collect(rows, err, func(s scanner) (Environment, error) { return scanEnvironment(s) })
	if err != nil {
		return nil, 0, wrapErr("list environments", err)
	}
	return out, total, nil
}

// EnvironmentRuntimes lists, sorted, the runtimes live environments run on.
func (db *DB) EnvironmentRuntimes(ctx context.Context) ([]string, error) {
	rows, err := db.query(ctx, db.reader, db.q(`SELECT DISTINCT runtime FROM environments WHERE deleted_at IS NULL ORDER BY runtime`))
	out, err := collect(rows, err, func(s scanner) (string, error) {
		var name string
		err := s.Scan(&name)
		return name, err
	})
	if err != nil {
		return nil, wrapErr("list environment runtimes", err)
	}
	return out, nil
}

// UpdateEnvironment reads the live environment id, lets fn change it, and
// writes it back, all in one transaction with the row locked, so concurrent
// updates never lose each other's changes.
//
// fn may change any field but ID, UserID and CreatedAt; UpdatedAt is set
// here. Setting DeletedAt soft-deletes the environment. If fn returns an
// error nothing is written and that error is returned unwrapped. Renaming
// onto another live environment's name returns ErrConflict; a missing or
// soft-deleted environment, ErrNotFound.
//
// fn runs inside the transaction: it must be quick and must not call DB
// methods that write (on SQLite that would wait forever for the single
// writer connection fn's transaction holds).
//
// It enforces no quota; UpdateEnvironmentWithinLimits (quota.go) does.
func (db *DB) UpdateEnvironment(ctx context.Context, id string, fn func(*Environment) error) (Environment, error) {
	return db.updateEnvironment(ctx, id, nil, fn)
}

// updateEnvironment is UpdateEnvironment, and with l also the quota check
// of UpdateEnvironmentWithinLimits, in the same transaction.
func (db *DB) updateEnvironment(ctx context.Context, id string, l *EnvironmentLimits, fn func(*Environment) error) (Environment, error) {
	var (
		out   Environment
		fnErr error
	)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if l != nil {
			// The owner's quota is locked before the environment's row,
			// the order every quota check takes, so two of them cannot
			// deadlock.
			if err := db.lockUserQuota(ctx, tx, l.UserID); err != nil {
				return err
			}
		}
		query := `SELECT ` + environmentColumns + ` FROM environments WHERE id = ? AND deleted_at IS NULL`
		if db.engine == enginePostgres {
			// SQLite needs no row lock: the transaction began IMMEDIATE and
			// holds the database's only write lock.
			query += " FOR UPDATE"
		}
		e, err := scanEnvironment(tx.QueryRowContext(ctx, db.q(query), id))
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if l != nil && e.UserID != l.UserID {
			return fmt.Errorf("limits are for user %q, environment %s is %q's", l.UserID, id, e.UserID)
		}
		userID, createdAt, wasActive := e.UserID, e.CreatedAt, isActive(e.Status)
		if err := fn(&e); err != nil {
			fnErr = err
			return err
		}
		if e.ID != id || e.UserID != userID || !e.CreatedAt.Equal(createdAt) {
			return errors.New("fn changed ID, UserID or CreatedAt, which are fixed")
		}
		if l != nil && !wasActive && isActive(e.Status) {
			c, err := countEnvironments(ctx, db, tx, userID, id)
			if err != nil {
				return err
			}
			if qe := checkLimits(*l, c, false, true); qe != nil {
				fnErr = qe
				return qe
			}
		}
		e.UpdatedAt = now()
		normEnvironmentTimes(&e)

		args, err := db.environmentMutableArgs(&e)
		if err != nil {
			return err
		}
		set := strings.Join(environmentMutableColumns, " = ?, ") + " = ?"
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE environments SET `+set+` WHERE id = ?`), append(args, id)...); err != nil {
			return err
		}
		out = e
		return nil
	})
	if fnErr != nil {
		return Environment{}, fnErr
	}
	if err != nil {
		return Environment{}, wrapErr(fmt.Sprintf("update environment %s", id), err)
	}
	return out, nil
}

// ListIdleCandidates returns the running, live environments that have
// auto-stop enabled and were last accessed before cutoff, least recently
// accessed first. Whether each one has been idle for its own
// AutoStopMinutes is for the caller to decide.
func (db *DB) ListIdleCandidates(ctx context.Context, cutoff time.Time) ([]Environment, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT `+environmentColumns+` FROM environments
		WHERE deleted_at IS NULL AND status = ? AND auto_stop_minutes > 0 AND last_accessed_at < ?
		ORDER BY last_accessed_at, id`), string(StatusRunning), db.timeArg(cutoff))
	out, err := collect(rows, err, func(s scanner) (Environment, error) { return scanEnvironment(s) })
	return out, wrapErr("list idle candidates", err)
}

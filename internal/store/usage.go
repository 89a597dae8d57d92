package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// usageBatchRows bounds one multi-row INSERT. At 9 values a row it stays far
// below both engines' limits on bound parameters (SQLite 32766, PostgreSQL
// 65535).
const usageBatchRows = 500

const resourceUsageColumns = `id, environment_id, timestamp, cpu_usage_percent, memory_usage_mb,
	disk_usage_mb, network_in_mb, network_out_mb, cost_amount, billing_period`

// InsertResourceUsage stores samples in one transaction, a multi-row INSERT
// per batch, so a report of many samples costs one commit. A zero Timestamp
// is taken as now. The rows' IDs are assigned by the database and not
// reported back.
func (db *DB) InsertResourceUsage(ctx context.Context, rows []ResourceUsage) error {
	if len(rows) == 0 {
		return nil
	}
	t := now()
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(rows); start += usageBatchRows {
			batch := rows[start:min(start+usageBatchRows, len(rows))]
			var query strings.Builder
			query.WriteString(`INSERT INTO resource_usage (environment_id, timestamp, cpu_usage_percent,
				memory_usage_mb, disk_usage_mb, network_in_mb, network_out_mb, cost_amount, billing_period) VALUES `)
			args := make([]any, 0, len(batch)*9)
			for i, r := range batch {
				if i > 0 {
					query.WriteString(", ")
				}
				query.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
				ts := r.Timestamp
				if ts.IsZero() {
					ts = t
				}
				args = append(args, r.EnvironmentID, db.timeArg(ts), r.CPUUsagePercent, r.MemoryUsageMB,
					r.DiskUsageMB, r.NetworkInMB, r.NetworkOutMB, r.CostAmount, r.BillingPeriod)
			}
			if _, err := tx.ExecContext(ctx, db.q(query.String()), args...); err != nil {
				return err
			}
		}
		return nil
	})
	return wrapErr("insert resource usage", err)
}

// ListResourceUsage returns an environment's samples taken at or after since,
// oldest first, at most limit of them (limit <= 0: all).
func (db *DB) ListResourceUsage(ctx context.Context, environmentID string, since time.Time, limit int) ([]ResourceUsage, error) {
	query := `SELECT ` + resourceUsageColumns + ` FROM resource_usage
		WHERE environment_id = ? AND timestamp >= ? ORDER BY timestamp, id`
	args := []any{environmentID, db.timeArg(since)}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := db.query(ctx, db.reader, db.q(query), args...)
	out, err := collect(rows, err, func(s scanner) (ResourceUsage, error) {
		var r ResourceUsage
		err := s.Scan(&r.ID, &r.EnvironmentID, timeCol{&r.Timestamp}, &r.CPUUsagePercent, &r.MemoryUsageMB,
			&r.DiskUsageMB, &r.NetworkInMB, &r.NetworkOutMB, &r.CostAmount, &r.BillingPeriod)
		return r, err
	})
	return out, wrapErr("list resource usage", err)
}

// DeleteResourceUsageBefore deletes every sample older than cutoff (of every
// environment) and reports how many went.
func (db *DB) DeleteResourceUsageBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM resource_usage WHERE timestamp < ?`), db.timeArg(cutoff))
	if err != nil {
		return 0, wrapErr("delete resource usage", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrapErr("delete resource usage", err)
	}
	return n, nil
}

// InsertActivity records an event. A zero CreatedAt is taken as now; an empty
// UserID (events the system caused, such as an idle stop) is stored as NULL.
func (db *DB) InsertActivity(ctx context.Context, a Activity) error {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now()
	}
	var userID any
	if a.UserID != "" {
		userID = a.UserID
	}
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO activity_events (environment_id, user_id, kind, detail, created_at) VALUES (?, ?, ?, ?, ?)`),
		a.EnvironmentID, userID, a.Kind, a.Detail, db.timeArg(a.CreatedAt))
	return wrapErr("insert activity", err)
}

// ListActivity returns an environment's events, newest first, at most limit
// of them (limit <= 0: all).
func (db *DB) ListActivity(ctx context.Context, environmentID string, limit int) ([]Activity, error) {
	query := `SELECT id, environment_id, user_id, kind, detail, created_at FROM activity_events
		WHERE environment_id = ? ORDER BY created_at DESC, id DESC`
	args := []any{environmentID}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := db.query(ctx, db.reader, db.q(query), args...)
	out, err := collect(rows, err, func(s scanner) (Activity, error) {
		var (
			a      Activity
			userID sql.NullString
		)
		err := s.Scan(&a.ID, &a.EnvironmentID, &userID, &a.Kind, &a.Detail, timeCol{&a.CreatedAt})
		a.UserID = userID.String
		return a, err
	})
	return out, wrapErr("list activity", err)
}

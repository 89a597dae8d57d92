package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Kinds of actor an audit event names.
const (
	ActorUser   = "user"
	ActorAgent  = "agent"
	ActorSystem = "system"
)

// AuditEvent is one entry of the audit log: who (ActorUserID, ActorKind) did
// what (Action) to which object, from where (IP, RequestID), and whether it
// worked. The log is append-only: the store inserts and lists events and has
// no way to change one; the only removal is of events older than the
// retention (DeleteAuditEventsBefore).
type AuditEvent struct {
	ID          int64
	CreatedAt   time.Time
	ActorUserID string // empty: no user (the system, or an unknown login)
	ActorKind   string // ActorUser, ActorAgent or ActorSystem
	Action      string // e.g. environment.create, auth.login
	ObjectType  string // e.g. environment, token, user
	ObjectID    string
	IP          string
	RequestID   string
	Detail      map[string]any
	Success     bool
}

// AuditFilter selects audit events. Empty fields do not filter.
type AuditFilter struct {
	ActorUserID string
	Action      string
	ObjectType  string
	ObjectID    string
	Since       time.Time // inclusive
	Until       time.Time // exclusive
	Limit       int       // <= 0: no limit
	Offset      int
}

// InsertAuditEvent appends an event. A zero CreatedAt is taken as now.
func (db *DB) InsertAuditEvent(ctx context.Context, e AuditEvent) error {
	switch e.ActorKind {
	case ActorUser, ActorAgent, ActorSystem:
	default:
		return errors.New("store: insert audit event: actor kind must be user, agent or system")
	}
	if e.Action == "" {
		return errors.New("store: insert audit event: empty action")
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now()
	}
	var actor any
	if e.ActorUserID != "" {
		actor = e.ActorUserID
	}
	detail, err := jsonArg(e.Detail)
	if err != nil {
		return wrapErr("insert audit event", err)
	}
	_, err = db.exec(ctx, db.writer, db.q(`
		INSERT INTO audit_events (created_at, actor_user_id, actor_kind, action, object_type, object_id, ip, request_id, detail, success)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		db.timeArg(e.CreatedAt), actor, e.ActorKind, e.Action, e.ObjectType, e.ObjectID, e.IP, e.RequestID, detail, e.Success)
	return wrapErr("insert audit event", err)
}

// ListAuditEvents returns the events matching f, newest first, and how many
// match in total before Limit and Offset.
func (db *DB) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, int, error) {
	var (
		conds []string
		args  []any
	)
	for _, c := range []struct{ col, val string }{
		{"actor_user_id", f.ActorUserID}, {"action", f.Action}, {"object_type", f.ObjectType}, {"object_id", f.ObjectID},
	} {
		if c.val != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= ?")
		args = append(args, db.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "created_at < ?")
		args = append(args, db.timeArg(f.Until))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := db.queryRow(ctx, db.reader, db.q(`SELECT COUNT(*) FROM audit_events`+where), args...).Scan(&total); err != nil {
		return nil, 0, wrapErr("count audit events", err)
	}
	query := `SELECT id, created_at, actor_user_id, actor_kind, action, object_type, object_id, ip, request_id, detail, success
		FROM audit_events` + where + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, f.Limit)
	}
	if f.Offset > 0 {
		if f.Limit <= 0 {
			query += " LIMIT -1"
			if db.engine == enginePostgres {
				query = strings.TrimSuffix(query, " LIMIT -1") + " LIMIT ALL"
			}
		}
		query += " OFFSET ?"
		args = append(args, f.Offset)
	}
	rows, err := db.query(ctx, db.reader, db.q(query), args...)
	out, err := collect(rows, err, func(s scanner) (AuditEvent, error) {
		var (
			e     AuditEvent
			actor sql.NullString
		)
		err := s.Scan(&e.ID, timeCol{&e.CreatedAt}, &actor, &e.ActorKind, &e.Action, &e.ObjectType, &e.ObjectID,
			&e.IP, &e.RequestID, jsonCol{&e.Detail}, &e.Success)
		e.ActorUserID = actor.String
		return e, err
	})
	if err != nil {
		return nil, 0, wrapErr("list audit events", err)
	}
	return out, total, nil
}

// DeleteAuditEventsBefore deletes up to limit events (the oldest first)
// created before cutoff and reports how many went. The caller repeats it
// until fewer than limit go: each call is one short statement, so pruning
// a large backlog never holds SQLite's one write lock for long.
func (db *DB) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, errors.New("store: delete audit events: limit must be positive")
	}
	res, err := db.exec(ctx, db.writer, db.q(`
		DELETE FROM audit_events WHERE id IN (
			SELECT id FROM audit_events WHERE created_at < ? ORDER BY created_at, id LIMIT ?)`),
		db.timeArg(cutoff), limit)
	if err != nil {
		return 0, wrapErr("delete audit events", err)
	}
	n, err := res.RowsAffected()
	return n, wrapErr("delete audit events", err)
}

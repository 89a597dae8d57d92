package store

import (
	"context"
	"errors"
	"time"
)

// Replica is a running dev8 server on this database: several behind a load
// balancer on PostgreSQL, the one on SQLite.
type Replica struct {
	// ID is random, new at every start.
	ID string
	// URL is where the other replicas reach this one (the relay of
	// workspace tunnels).
	URL         string
	StartedAt   time.Time
	HeartbeatAt time.Time
	// Draining: the replica is shutting down and takes no new work.
	Draining bool
}

// TunnelHolder says which replica holds a workspace's tunnel, since when.
type TunnelHolder struct {
	EnvironmentID string
	Since         time.Time
	// Replica is the holder's row as it is now (its heartbeat tells
	// whether it is alive).
	Replica Replica
}

const replicaColumns = `id, url, started_at, heartbeat_at, draining`

func scanReplica(s scanner) (Replica, error) {
	var r Replica
	err := s.Scan(&r.ID, &r.URL, timeCol{&r.StartedAt}, timeCol{&r.HeartbeatAt}, &r.Draining)
	return r, err
}

// RegisterReplica stores r, replacing a row with its ID (a replica whose
// row was pruned while it could not reach the database registers again).
// ID and URL are required; zero times are now.
func (db *DB) RegisterReplica(ctx context.Context, r Replica) (Replica, error) {
	if r.ID == "" || r.URL == "" {
		return Replica{}, errors.New("store: register replica: id and url are required")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = now()
	}
	if r.HeartbeatAt.IsZero() {
		r.HeartbeatAt = now()
	}
	r.StartedAt, r.HeartbeatAt = normTime(r.StartedAt), normTime(r.HeartbeatAt)
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO replicas (`+replicaColumns+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET url = excluded.url, started_at = excluded.started_at,
			heartbeat_at = excluded.heartbeat_at, draining = excluded.draining`),
		r.ID, r.URL, db.timeArg(r.StartedAt), db.timeArg(r.HeartbeatAt), r.Draining)
	if err != nil {
		return Replica{}, wrapErr("register replica", err)
	}
	return r, nil
}

// HeartbeatReplica records that replica id was alive at at. ErrNotFound:
// its row is gone (pruned as dead, or deleted), so it must register again.
func (db *DB) HeartbeatReplica(ctx context.Context, id string, at time.Time) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE replicas SET heartbeat_at = ? WHERE id = ?`), db.timeArg(at), id)
	return affectedOne("heartbeat replica", res, err)
}

// SetReplicaDraining marks replica id draining (or not). ErrNotFound if
// there is no such replica.
func (db *DB) SetReplicaDraining(ctx context.Context, id string, draining bool) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE replicas SET draining = ? WHERE id = ?`), draining, id)
	return affectedOne("set replica draining", res, err)
}

// GetReplica returns replica id, or ErrNotFound.
func (db *DB) GetReplica(ctx context.Context, id string) (Replica, error) {
	r, err := scanReplica(db.queryRow(ctx, db.reader, db.q(`SELECT `+replicaColumns+` FROM replicas WHERE id = ?`), id))
	return r, lookupErr("get replica", err)
}

// ListReplicas returns every registered replica, alive or not, oldest
// first.
func (db *DB) ListReplicas(ctx context.Context) ([]Replica, error) {
	rows, err := db.query(ctx, db.reader, db.q(`SELECT `+replicaColumns+` FROM replicas ORDER BY started_at, id`))
	out, err := collect(rows, err, scanReplica)
	if err != nil {
		return nil, wrapErr("list replicas", err)
	}
	return out, nil
}

// DeleteReplica removes replica id and the tunnels it held (it shut down).
// A replica already gone is no error.
func (db *DB) DeleteReplica(ctx context.Context, id string) error {
	_, err := db.exec(ctx, db.writer, db.q(`DELETE FROM replicas WHERE id = ?`), id)
	return wrapErr("delete replica", err)
}

// DeleteReplicasBefore removes the replicas whose last heartbeat was before
// before, with the tunnels they held, and says how many.
func (db *DB) DeleteReplicasBefore(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM replicas WHERE heartbeat_at < ?`), db.timeArg(before))
	if err != nil {
		return 0, wrapErr("delete dead replicas", err)
	}
	n, err := res.RowsAffected()
	return n, wrapErr("delete dead replicas", err)
}

// SetTunnelHolder records that replica replicaID holds environmentID's
// tunnel since since, in place of whichever held it before (the
// supervisor's newest connection is the one that counts). The replica must
// be registered.
func (db *DB) SetTunnelHolder(ctx context.Context, environmentID, replicaID string, since time.Time) error {
	if environmentID == "" || replicaID == "" {
		return errors.New("store: set tunnel holder: environment and replica are required")
	}
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO tunnel_holders (environment_id, replica_id, since) VALUES (?, ?, ?)
		ON CONFLICT (environment_id) DO UPDATE SET replica_id = excluded.replica_id, since = excluded.since`),
		environmentID, replicaID, db.timeArg(since))
	return wrapErr("set tunnel holder", err)
}

// DeleteTunnelHolder removes environmentID's holder only if it is still
// replicaID's tunnel from since: a newer connection (elsewhere, or here)
// is not erased by the end of an older one. It reports whether a row went.
func (db *DB) DeleteTunnelHolder(ctx context.Context, environmentID, replicaID string, since time.Time) (bool, error) {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM tunnel_holders WHERE environment_id = ? AND replica_id = ? AND since = ?`),
		environmentID, replicaID, db.timeArg(since))
	if err != nil {
		return false, wrapErr("delete tunnel holder", err)
	}
	n, err := res.RowsAffected()
	return n > 0, wrapErr("delete tunnel holder", err)
}

// CountTunnelHolders counts the tunnels noted as replicaID's.
func (db *DB) CountTunnelHolders(ctx context.Context, replicaID string) (int, error) {
	var n int
	err := db.queryRow(ctx, db.reader, db.q(`SELECT COUNT(*) FROM tunnel_holders WHERE replica_id = ?`), replicaID).Scan(&n)
	return n, wrapErr("count tunnel holders", err)
}

// GetTunnelHolder returns who holds environmentID's tunnel, with the
// holder's replica row, or ErrNotFound when nobody does.
func (db *DB) GetTunnelHolder(ctx context.Context, environmentID string) (TunnelHolder, error) {
	var h TunnelHolder
	err := db.queryRow(ctx, db.reader, db.q(`
		SELECT t.environment_id, t.since, r.id, r.url, r.started_at, r.heartbeat_at, r.draining
		FROM tunnel_holders t JOIN replicas r ON r.id = t.replica_id
		WHERE t.environment_id = ?`), environmentID).
		Scan(&h.EnvironmentID, timeCol{&h.Since}, &h.Replica.ID, &h.Replica.URL, timeCol{&h.Replica.StartedAt}, timeCol{&h.Replica.HeartbeatAt}, &h.Replica.Draining)
	return h, lookupErr("get tunnel holder", err)
}

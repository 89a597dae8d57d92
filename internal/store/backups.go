package store

import (
	"context"
	"errors"
	"time"
)

// BackupTrigger is why a snapshot of a workspace was taken.
type BackupTrigger string

// Backup triggers (the seed's Backup model).
const (
	BackupManual      BackupTrigger = "MANUAL"
	BackupPreShutdown BackupTrigger = "PRE_SHUTDOWN"
	BackupScheduled   BackupTrigger = "SCHEDULED"
)

// BackupStatus is where a snapshot is in its life.
type BackupStatus string

// Backup statuses.
const (
	BackupPending   BackupStatus = "PENDING"
	BackupRunning   BackupStatus = "RUNNING"
	BackupCompleted BackupStatus = "COMPLETED"
	BackupFailed    BackupStatus = "FAILED"
)

// Backup is the record of one snapshot of an environment's workspace. The
// files themselves are in the server's snapshot repository under
// SnapshotID (set once Status is COMPLETED).
type Backup struct {
	ID            string
	EnvironmentID string
	UserID        string
	Trigger       BackupTrigger
	Status        BackupStatus
	SnapshotID    string
	SizeBytes     int64 // bytes of the files in the snapshot
	ChangedBytes  int64 // bytes newly stored by this snapshot (compressed)
	FileCount     int64
	Duration      time.Duration
	Error         string
	CreatedAt     time.Time
	CompletedAt   *time.Time
}

// BackupResult is how a snapshot ended: Error empty means COMPLETED.
type BackupResult struct {
	SnapshotID   string
	SizeBytes    int64
	ChangedBytes int64
	FileCount    int64
	Duration     time.Duration
	Error        string
}

const backupCols = `id, environment_id, user_id, trigger_kind, status, snapshot_id, size_bytes,
	changed_bytes, file_count, duration_ms, error, created_at, completed_at`

func scanBackup(s scanner) (Backup, error) {
	var b Backup
	var ms int64
	err := s.Scan(&b.ID, &b.EnvironmentID, &b.UserID, &b.Trigger, &b.Status, &b.SnapshotID, &b.SizeBytes,
		&b.ChangedBytes, &b.FileCount, &ms, &b.Error, timeCol{&b.CreatedAt}, nullTimeCol{&b.CompletedAt})
	b.Duration = time.Duration(ms) * time.Millisecond
	return b, err
}

// CreateBackup records a PENDING snapshot of an environment, assigning ID
// (unless set) and CreatedAt.
func (db *DB) CreateBackup(ctx context.Context, b Backup) (Backup, error) {
	if b.EnvironmentID == "" || b.UserID == "" {
		return Backup{}, errors.New("store: create backup: no environment or user")
	}
	if b.ID == "" {
		b.ID = newID("snap_")
	}
	if b.Trigger == "" {
		b.Trigger = BackupManual
	}
	b.Status = BackupPending
	b.CreatedAt = now()
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO backups (id, environment_id, user_id, trigger_kind, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`),
		b.ID, b.EnvironmentID, b.UserID, string(b.Trigger), string(b.Status), db.timeArg(b.CreatedAt))
	if err != nil {
		return Backup{}, wrapErr("create backup", err)
	}
	return b, nil
}

// StartBackup moves a PENDING backup to RUNNING. ErrNotFound if there is no
// such PENDING backup.
func (db *DB) StartBackup(ctx context.Context, id string) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE backups SET status = ? WHERE id = ? AND status = ?`),
		string(BackupRunning), id, string(BackupPending))
	return affectedOne("start backup", res, err)
}

// FinishBackup records how a PENDING or RUNNING backup ended: COMPLETED
// with its snapshot and figures, or FAILED with r.Error. ErrNotFound if
// there is no such unfinished backup.
func (db *DB) FinishBackup(ctx context.Context, id string, r BackupResult) error {
	status := BackupCompleted
	if r.Error != "" {
		status = BackupFailed
	} else if r.SnapshotID == "" {
		return errors.New("store: finish backup: completed without a snapshot id")
	}
	t := now()
	res, err := db.exec(ctx, db.writer, db.q(`
		UPDATE backups SET status = ?, snapshot_id = ?, size_bytes = ?, changed_bytes = ?, file_count = ?,
			duration_ms = ?, error = ?, completed_at = ?
		WHERE id = ? AND status IN (?, ?)`),
		string(status), r.SnapshotID, r.SizeBytes, r.ChangedBytes, r.FileCount, r.Duration.Milliseconds(),
		r.Error, db.timeArg(t), id, string(BackupPending), string(BackupRunning))
	return affectedOne("finish backup", res, err)
}

// GetBackup returns one backup. ErrNotFound if there is none.
func (db *DB) GetBackup(ctx context.Context, id string) (Backup, error) {
	row := db.queryRow(ctx, db.reader, db.q(`SELECT `+backupCols+` FROM backups WHERE id = ?`), id)
	b, err := scanBackup(row)
	return b, lookupErr("get backup", err)
}

// ListBackups returns an environment's backups, newest first.
func (db *DB) ListBackups(ctx context.Context, environmentID string) ([]Backup, error) {
	rows, err := db.query(ctx, db.reader, db.q(`SELECT `+backupCols+` FROM backups
		WHERE environment_id = ? ORDER BY created_at DESC, id DESC`), environmentID)
	out, err := collect(rows, err, scanBackup)
	return out, wrapErr("list backups", err)
}

// LatestCompletedBackup returns the environment's newest COMPLETED backup.
// ErrNotFound if there is none.
func (db *DB) LatestCompletedBackup(ctx context.Context, environmentID string) (Backup, error) {
	row := db.queryRow(ctx, db.reader, db.q(`SELECT `+backupCols+` FROM backups
		WHERE environment_id = ? AND status = ? ORDER BY created_at DESC, id DESC LIMIT 1`),
		environmentID, string(BackupCompleted))
	b, err := scanBackup(row)
	return b, lookupErr("latest backup", err)
}

// FailUnfinishedBackups marks every PENDING or RUNNING backup FAILED with
// reason (at startup: the server that was running them is gone). It
// returns how many it marked.
func (db *DB) FailUnfinishedBackups(ctx context.Context, reason string) (int64, error) {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE backups SET status = ?, error = ?, completed_at = ?
		WHERE status IN (?, ?)`), string(BackupFailed), reason, db.timeArg(now()),
		string(BackupPending), string(BackupRunning))
	if err != nil {
		return 0, wrapErr("fail unfinished backups", err)
	}
	n, err := res.RowsAffected()
	return n, wrapErr("fail unfinished backups", err)
}

// LatestBackup returns the environment's newest backup, whatever its
// status. ErrNotFound if there is none.
func (db *DB) LatestBackup(ctx context.Context, environmentID string) (Backup, error) {
	row := db.queryRow(ctx, db.reader, db.q(`SELECT `+backupCols+` FROM backups
		WHERE environment_id = ? ORDER BY created_at DESC, id DESC LIMIT 1`), environmentID)
	b, err := scanBackup(row)
	return b, lookupErr("latest backup", err)
}

// DeleteBackupsBySnapshot removes the records of the given repository
// snapshots (after retention forgot them). It returns how many it removed.
func (db *DB) DeleteBackupsBySnapshot(ctx context.Context, snapshotIDs []string) (int64, error) {
	var n int64
	for _, id := range snapshotIDs {
		if id == "" {
			continue
		}
		res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM backups WHERE snapshot_id = ?`), id)
		if err != nil {
			return n, wrapErr("delete backups", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, wrapErr("delete backups", err)
		}
		n += k
	}
	return n, nil
}

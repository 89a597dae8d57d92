package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// Snapshots of workspaces (issue 7).
//
// The repository is the server's (Config.SnapshotRepo: by default a
// directory store under <data-dir>/backups, one per installation, so chunks
// are deduplicated across every environment). The supervisor takes the
// snapshot or restores it inside the workspace, but holds no credentials:
// the server opens a tunnel stream to it (tunnel.ServiceSnapshot), sends the
// job and serves the repository on that stream, limited to what the job
// needs (snapshot.Access). Records of each snapshot are in the backups table.

// BackupStore keeps snapshot records (store.DB implements it).
type BackupStore interface {
	CreateBackup(ctx context.Context, b store.Backup) (store.Backup, error)
	StartBackup(ctx context.Context, id string) error
	FinishBackup(ctx context.Context, id string, r store.BackupResult) error
	GetBackup(ctx context.Context, id string) (store.Backup, error)
	ListBackups(ctx context.Context, environmentID string) ([]store.Backup, error)
	LatestCompletedBackup(ctx context.Context, environmentID string) (store.Backup, error)
	LatestBackup(ctx context.Context, environmentID string) (store.Backup, error)
	DeleteBackupsBySnapshot(ctx context.Context, snapshotIDs []string) (int64, error)
}

// Snapshot job timeouts: a job longer than this is cancelled and recorded
// as failed.
const (
	snapshotJobTimeout = time.Hour
	restoreJobTimeout  = time.Hour
)

type backupJSON struct {
	ID            string     `json:"id"`
	EnvironmentID string     `json:"environment_id"`
	Trigger       string     `json:"trigger"`
	Status        string     `json:"status"`
	SnapshotID    string     `json:"snapshot_id,omitempty"`
	SizeBytes     int64      `json:"size_bytes"`
	ChangedBytes  int64      `json:"changed_bytes"`
	FileCount     int64      `json:"file_count"`
	DurationMS    int64      `json:"duration_ms"`
	Error         string     `json:"error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
}

func toBackupJSON(b store.Backup) backupJSON {
	return backupJSON{ID: b.ID, EnvironmentID: b.EnvironmentID, Trigger: string(b.Trigger), Status: string(b.Status),
		SnapshotID: b.SnapshotID, SizeBytes: b.SizeBytes, ChangedBytes: b.ChangedBytes, FileCount: b.FileCount,
		DurationMS: b.Duration.Milliseconds(), Error: b.Error, CreatedAt: b.CreatedAt, CompletedAt: b.CompletedAt}
}

// requireSnapshots refuses when this server keeps no snapshots.
func (a *API) requireSnapshots() error {
	if a.backups == nil || a.snapshotRepo == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, Message: "Snapshots are not available", Details: "this server has no snapshot repository"}
	}
	return nil
}

// requireWorkspace refuses a job for an environment whose supervisor cannot
// be reached now.
func (a *API) requireWorkspace(env store.Environment) error {
	if err := requireRunning(env); err != nil {
		return err
	}
	if !a.tunnels.Connected(env.ID) {
		return streamError(tunnel.ErrNotConnected)
	}
	return nil
}

// createSnapshot takes a MANUAL snapshot: 202 with the PENDING record; the
// snapshot runs in the background (GET .../snapshots/{sid} follows it).
func (a *API) createSnapshot(w http.ResponseWriter, r *http.Request) {
	env := environmentFrom(r.Context())
	var body struct{}
	if err := decodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireWorkspace(env); err != nil {
		a.writeError(w, r, err)
		return
	}
	// One at a time per environment: the supervisor runs them one after
	// the other anyway, and a queue of them would only hold streams open.
	if last, err := a.backups.LatestBackup(r.Context(), env.ID); err == nil && (last.Status == store.BackupPending || last.Status == store.BackupRunning) {
		a.writeError(w, r, &Error{Status: http.StatusConflict, Code: CodeInvalidState, Message: "A snapshot is in progress",
			Details: "snapshot " + last.ID + " is " + string(last.Status) + "; wait for it (GET .../snapshots/" + last.ID + ")"})
		return
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, err)
		return
	}
	b, err := a.backups.CreateBackup(r.Context(), store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupManual})
	a.audit(r, "snapshot.create", "environment", env.ID, err == nil, map[string]any{"name": env.Name, "snapshot": b.ID})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	go a.runSnapshot(context.Background(), env, b)
	writeJSON(w, http.StatusAccepted, map[string]any{"snapshot": toBackupJSON(b)})
}

// runSnapshot asks the environment's supervisor to snapshot its workspace
// and records the outcome.
func (a *API) runSnapshot(ctx context.Context, env store.Environment, b store.Backup) {
	ctx, cancel := context.WithTimeout(ctx, snapshotJobTimeout)
	defer cancel()
	log := a.log.With("environment", env.ID, "snapshot", b.ID)
	finish := func(res store.BackupResult) {
		if err := a.backups.FinishBackup(context.WithoutCancel(ctx), b.ID, res); err != nil {
			log.Error("record snapshot", "err", err)
		}
	}
	if err := a.backups.StartBackup(ctx, b.ID); err != nil {
		log.Error("start snapshot", "err", err)
		finish(store.BackupResult{Error: err.Error()})
		return
	}
	job := snapshot.Job{Op: snapshot.JobSnapshot, Source: env.ID}
	var access snapshot.Access
	access.AllowCreate = true
	if prev, err := a.backups.LatestCompletedBackup(ctx, env.ID); err == nil {
		job.Parent = prev.SnapshotID
		access.ReadSnapshots = []string{prev.SnapshotID}
	} else if !errors.Is(err, store.ErrNotFound) {
		finish(store.BackupResult{Error: err.Error()})
		return
	}
	start := time.Now()
	res, err := a.runJob(ctx, env.ID, job, access)
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	if err != nil {
		log.Warn("snapshot failed", "err", err)
		finish(store.BackupResult{Error: err.Error(), Duration: time.Since(start)})
		return
	}
	st := res.Snapshot.Stats
	finish(store.BackupResult{SnapshotID: res.Snapshot.ID, SizeBytes: st.BytesScanned, ChangedBytes: st.NewBytes,
		FileCount: st.Files, Duration: time.Since(start)})
}

// PreStopSnapshot takes a PRE_SHUTDOWN snapshot of an environment about to
// be stopped (the lifecycle calls it, bounded by its timeout, before every
// stop: a user's or the idle reaper's). It always runs when the workspace
// is connected — incremental, it reads only files that changed — so that
// work written just before the stop is kept, even by a program nobody was
// typing into. Its record tells the outcome; a failure does not hold the
// stop back.
func (a *API) PreStopSnapshot(ctx context.Context, env store.Environment) {
	if a.snapshotRepo == nil || a.backups == nil || !a.tunnels.Connected(env.ID) {
		return
	}
	b, err := a.backups.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupPreShutdown})
	if err != nil {
		a.log.ErrorContext(ctx, "pre-stop snapshot", "environment", env.ID, "err", err)
		return
	}
	a.runSnapshot(ctx, env, b)
}

// runJob opens a snapshot stream to the environment's supervisor and serves
// the repository to it until the job ends.
func (a *API) runJob(ctx context.Context, envID string, job snapshot.Job, access snapshot.Access) (snapshot.JobResult, error) {
	dialCtx, cancel := context.WithTimeout(ctx, agentWait)
	conn, err := a.tunnels.Dial(dialCtx, envID, tunnel.Header{Service: tunnel.ServiceSnapshot})
	cancel()
	if err != nil {
		return snapshot.JobResult{}, toError(streamError(err))
	}
	return snapshot.ServeJob(ctx, conn, a.snapshotRepo, job, access)
}

func (a *API) listSnapshots(w http.ResponseWriter, r *http.Request) {
	env := environmentFrom(r.Context())
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	list, err := a.backups.ListBackups(r.Context(), env.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]backupJSON, len(list))
	for i, b := range list {
		out[i] = toBackupJSON(b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshots": out})
}

// snapshotFrom loads {sid}, which must be a snapshot of the request's
// environment.
func (a *API) snapshotFrom(r *http.Request) (store.Backup, error) {
	env := environmentFrom(r.Context())
	if err := a.requireSnapshots(); err != nil {
		return store.Backup{}, err
	}
	b, err := a.backups.GetBackup(r.Context(), chi.URLParam(r, "sid"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.EnvironmentID != env.ID) {
		return store.Backup{}, errNotFound("Snapshot")
	}
	return b, err
}

func (a *API) getSnapshot(w http.ResponseWriter, r *http.Request) {
	b, err := a.snapshotFrom(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshot": toBackupJSON(b)})
}

// restoreSnapshot restores a snapshot into its own environment, which must
// be running: the workspace directory (or the entry at path) becomes
// exactly the snapshot's: files are replaced, and files and directories the
// snapshot does not have are removed, except those matching the snapshot's
// excludes (node_modules, caches: they were never in it) and sockets, FIFOs
// and devices. It answers when the restore is done; entries that could not
// be restored (a missing or corrupt chunk) are listed in failures, and the
// rest is restored.
func (a *API) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	env := environmentFrom(r.Context())
	var body struct {
		Path string `json:"path"`
	}
	if err := decodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := a.snapshotFrom(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := cleanSnapshotPath(body.Path)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if b.Status != store.BackupCompleted {
		a.writeError(w, r, &Error{Status: http.StatusConflict, Code: CodeInvalidState, Message: "Snapshot is not complete",
			Details: "it is " + string(b.Status)})
		return
	}
	if err := a.requireWorkspace(env); err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), restoreJobTimeout)
	defer cancel()
	job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Path: p, Clean: true}
	res, err := a.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
	if err == nil && res.Error != "" {
		err = &Error{Status: http.StatusBadGateway, Code: CodeUnavailable, Message: "The restore failed", Details: res.Error}
	}
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "path": p}
	if err != nil {
		detail["error"] = toError(err).Message
	} else {
		detail["failed"] = len(res.Failures)
	}
	a.audit(r, "snapshot.restore", "environment", env.ID, err == nil && len(res.Failures) == 0, detail)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	st := res.Restore
	if st == nil {
		st = &snapshot.RestoreStats{}
	}
	failures := res.Failures
	if failures == nil {
		failures = []snapshot.JobFailure{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"snapshot": b.ID, "path": p, "files": st.Files, "dirs": st.Dirs, "symlinks": st.Symlinks,
		"bytes": st.Bytes, "removed": res.Removed, "failures": failures, "duration_ms": st.Duration.Milliseconds(),
	})
}

// cleanSnapshotPath validates a path inside a snapshot: relative,
// slash-separated, without "..".
func cleanSnapshotPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if len(p) > 4096 || strings.ContainsRune(p, 0) || strings.HasPrefix(p, "/") {
		return "", errValidation("path must be relative to the workspace directory")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", errValidation(`path must not contain ".."`)
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// Forks: POST /environments with from_snapshot creates an environment as
// usual; once it is RUNNING and its supervisor has connected, the server
// restores the snapshot into its (new, otherwise empty or template-filled)
// workspace, exactly as a restore does. Until then the workspace does not
// have the files yet: a client that must see them waits for the audit event
// snapshot.fork (success or not, with the figures), or for the files. The
// source snapshot may be of any of the caller's environments, deleted ones
// included while the record exists.

// forkSource checks from_snapshot: one of the caller's COMPLETED snapshots.
// Nil when id is empty.
func (a *API) forkSource(ctx context.Context, caller store.User, id string) (*store.Backup, error) {
	if id == "" {
		return nil, nil
	}
	if len(id) > 64 {
		return nil, errValidation("from_snapshot: at most 64 characters")
	}
	if err := a.requireSnapshots(); err != nil {
		return nil, err
	}
	b, err := a.backups.GetBackup(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.UserID != caller.ID) {
		return nil, errValidation("from_snapshot: no snapshot " + id + " of yours")
	}
	if err != nil {
		return nil, err
	}
	if b.Status != store.BackupCompleted {
		return nil, errValidation("from_snapshot: snapshot " + id + " is " + string(b.Status) + ", not COMPLETED")
	}
	return &b, nil
}

// restoreFork restores a fork's snapshot into the new environment once it
// runs, and records the outcome in the audit log.
func (a *API) restoreFork(env store.Environment, b store.Backup) {
	ctx, cancel := context.WithTimeout(context.Background(), restoreJobTimeout)
	defer cancel()
	log := a.log.With("environment", env.ID, "from_snapshot", b.ID)
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "source_environment_id": b.EnvironmentID}
	var res snapshot.JobResult
	cur, err := a.lifecycle.WaitFor(ctx, env.ID, func(e store.Environment) bool {
		return e.Status != store.StatusCreating && e.Status != store.StatusStarting
	})
	if err == nil && cur.Status != store.StatusRunning {
		err = fmt.Errorf("the environment is %s, not RUNNING", cur.Status)
	}
	if err == nil {
		job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Clean: true}
		res, err = a.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
		if err == nil && res.Error != "" {
			err = errors.New(res.Error)
		}
	}
	if err != nil {
		log.Warn("fork: restore failed", "err", err)
		detail["error"] = err.Error()
	} else {
		if res.Restore != nil {
			detail["files"] = res.Restore.Files
			detail["bytes"] = res.Restore.Bytes
		}
		detail["failed"] = len(res.Failures)
		log.Info("fork: restored", "files", detail["files"], "failed", len(res.Failures))
	}
	e := store.AuditEvent{CreatedAt: a.now(), ActorKind: store.ActorSystem, Action: "snapshot.fork", ObjectType: "environment",
		ObjectID: env.ID, Detail: detail, Success: err == nil && len(res.Failures) == 0}
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer acancel()
	if err := a.store.InsertAuditEvent(actx, e); err != nil {
		log.Error("record audit event", "action", e.Action, "err", err)
	}
}

// SnapshotSchedule configures RunSnapshotSchedule. Zero values take the
// defaults.
type SnapshotSchedule struct {
	// Interval is how often a RUNNING environment used since its last
	// snapshot gets a SCHEDULED one (default 15 minutes).
	Interval time.Duration
	// Retention is what pruning keeps per environment (zero:
	// snapshot.DefaultRetention, the last 10 and one a day for 30 days;
	// KeepLast is at least 1); PruneInterval is how often it runs
	// (default 24 hours).
	Retention     snapshot.Retention
	PruneInterval time.Duration
}

// RunSnapshotSchedule takes SCHEDULED snapshots and prunes the repository
// until ctx ends. Every Interval it snapshots, one after the other, each
// RUNNING environment whose last activity is after its newest snapshot
// (started, or none yet) and whose newest snapshot is at least Interval
// old; an environment with a snapshot in progress is skipped. Every
// PruneInterval it forgets the snapshots Retention does not keep, deletes
// their records and the chunks nothing uses any more (safe while snapshots
// are being written: see snapshot.Repo.Prune).
func (a *API) RunSnapshotSchedule(ctx context.Context, cfg SnapshotSchedule) {
	if a.requireSnapshots() != nil {
		return
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Minute
	}
	if cfg.Retention == (snapshot.Retention{}) {
		cfg.Retention = snapshot.DefaultRetention
	}
	cfg.Retention.KeepLast = max(cfg.Retention.KeepLast, 1)
	cfg.Retention.KeepDaily = max(cfg.Retention.KeepDaily, 0)
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = 24 * time.Hour
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.scheduledSnapshots(ctx, cfg.Interval)
		if time.Since(lastPrune) >= cfg.PruneInterval && ctx.Err() == nil {
			lastPrune = time.Now()
			if err := a.pruneSnapshots(ctx, cfg.Retention); err != nil && ctx.Err() == nil {
				a.log.Error("prune snapshots", "err", err)
			}
		}
	}
}

func (a *API) scheduledSnapshots(ctx context.Context, interval time.Duration) {
	envs, _, err := a.store.ListEnvironments(ctx, store.EnvironmentFilter{Statuses: []store.Status{store.StatusRunning}})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("scheduled snapshots: list environments", "err", err)
		}
		return
	}
	now := a.now()
	for _, env := range envs {
		if ctx.Err() != nil {
			return
		}
		last, err := a.backups.LatestBackup(ctx, env.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			a.log.Error("scheduled snapshots: latest", "environment", env.ID, "err", err)
			continue
		case last.Status == store.BackupPending || last.Status == store.BackupRunning,
			now.Sub(last.CreatedAt) < interval, !env.LastAccessedAt.After(last.CreatedAt):
			continue
		}
		if !a.tunnels.Connected(env.ID) {
			continue
		}
		b, err := a.backups.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupScheduled})
		if err != nil {
			a.log.Error("scheduled snapshot", "environment", env.ID, "err", err)
			continue
		}
		a.runSnapshot(ctx, env, b)
	}
}

// pruneSnapshots applies retention to the repository and drops the records
// of the snapshots it forgot.
func (a *API) pruneSnapshots(ctx context.Context, ret snapshot.Retention) error {
	repo, err := snapshot.Open(ctx, a.snapshotRepo)
	if err != nil {
		return err
	}
	rep, err := repo.Prune(ctx, snapshot.PruneOptions{Retention: ret})
	if err != nil {
		return err
	}
	n, err := a.backups.DeleteBackupsBySnapshot(ctx, rep.Forgotten)
	a.log.Info("snapshots pruned", "forgotten", len(rep.Forgotten), "records_deleted", n, "blobs_deleted", rep.BlobsDeleted, "bytes_deleted", rep.BytesDeleted)
	return err
}

// verifySnapshots checks the whole repository (admins only): every
// snapshot's record and trees decode, and every chunk they use is there and
// matches its hash. 200 with the report either way; `ok` says whether the
// repository is intact.
func (a *API) verifySnapshots(w http.ResponseWriter, r *http.Request) {
	if caller := mustUser(r.Context()); caller.Role != store.RoleAdmin {
		a.writeError(w, r, &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "Not allowed", Details: "verifying the snapshot repository is for admins"})
		return
	}
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	repo, err := snapshot.Open(r.Context(), a.snapshotRepo)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("open snapshot repository: %w", err))
		return
	}
	report, err := repo.Verify(r.Context())
	if err != nil {
		a.writeError(w, r, fmt.Errorf("verify snapshot repository: %w", err))
		return
	}
	a.audit(r, "snapshot.verify", "repository", "", report.OK(), map[string]any{
		"snapshots": report.Snapshots, "chunks": report.Chunks, "problems": len(report.Problems), "bad_records": len(report.BadRecords)})
	writeJSON(w, http.StatusOK, map[string]any{"ok": report.OK(), "report": report})
}

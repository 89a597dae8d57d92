package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// Snapshots of workspaces (issue 7).
//
// The repository is the server's (Config.SnapshotRepo: by default a
// directory store under <data-dir>/backups, or S3 or Azure Blob with
// --snapshot-store; one per installation, so chunks are deduplicated across
// every environment). The supervisor takes the
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
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady, Message: "Snapshots are not available", Details: "this server has no snapshot repository"}
	}
	return nil
}

// requireWorkspace refuses a job for an environment that is not running,
// whose lost storage is being restored, or whose supervisor cannot be
// reached now.
func (a *API) requireWorkspace(ctx context.Context, env store.Environment) error {
	if err := gateway.RequireRunning(env); err != nil {
		return err
	}
	if err := a.requireNotRestoring(env.ID); err != nil {
		return err
	}
	// A workspace that just became RUNNING connects its supervisor a
	// moment later: a snapshot asked for at once waits for it, briefly.
	ctx, cancel := context.WithTimeout(ctx, workspaceConnectWait)
	defer cancel()
	if err := a.tunnels.Await(ctx, env.ID); err != nil {
		return gateway.StreamError(err)
	}
	return nil
}

// workspaceConnectWait bounds how long a snapshot or restore request waits
// for a RUNNING workspace's supervisor to connect.
const workspaceConnectWait = 10 * time.Second

// createSnapshot takes a MANUAL snapshot: 202 with the PENDING record; the
// snapshot runs in the background (GET .../snapshots/{sid} follows it).
func (a *API) createSnapshot(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	var body struct{}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireWorkspace(r.Context(), env); err != nil {
		a.writeError(w, r, err)
		return
	}
	// One at a time per environment: the supervisor runs them one after
	// the other anyway, and a queue of them would only hold streams open.
	if last, err := a.backups.LatestBackup(r.Context(), env.ID); err == nil && (last.Status == store.BackupPending || last.Status == store.BackupRunning) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "A snapshot is in progress",
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
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"snapshot": toBackupJSON(b)})
}

// runSnapshot asks the environment's supervisor to snapshot its workspace
// and records the outcome.
func (a *API) runSnapshot(ctx context.Context, env store.Environment, b store.Backup) {
	ctx, cancel := context.WithTimeout(ctx, snapshotJobTimeout)
	defer cancel()
	log := a.log.With("environment", env.ID, "snapshot", b.ID)
	finish := func(res store.BackupResult) {
		a.observeSnapshot(b.Trigger, res)
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
	switch {
	case err != nil && ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)):
		// The stream broke: the supervisor died (a crash, kill -9, the
		// workspace stopped) or its connection dropped. The snapshot
		// record was never written, so nothing of it is visible; its
		// chunks are left for pruning.
		err = fmt.Errorf("the workspace's supervisor went away during the snapshot (it exited or lost its connection); "+
			"this snapshot is incomplete and was discarded, earlier ones are intact: %w", err)
	case err == nil && res.Error != "":
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
	if a.snapshotRepo == nil || a.backups == nil {
		return
	}
	// The stop lets the restore of a lost volume finish first, within its
	// time (the restore may still be waiting for the supervisor to
	// connect). Half restored, the workspace is not worth a snapshot: it
	// would become the latest one, ahead of the one being restored.
	if !a.awaitRestore(ctx, env.ID) {
		a.log.WarnContext(ctx, "pre-stop snapshot skipped: the workspace was still being restored after its storage was lost", "environment", env.ID)
		return
	}
	if !a.tunnels.Connected(env.ID) {
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
	dialCtx, cancel := context.WithTimeout(ctx, gateway.AgentWait)
	conn, err := a.tunnels.Dial(dialCtx, envID, tunnel.Header{Service: tunnel.ServiceSnapshot})
	cancel()
	if err != nil {
		return snapshot.JobResult{}, httpapi.ToError(gateway.StreamError(err))
	}
	return snapshot.ServeJob(ctx, conn, a.snapshotRepo, job, access)
}

func (a *API) listSnapshots(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
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
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"snapshots": out})
}

// snapshotFrom loads {sid}, which must be a snapshot of the request's
// environment.
func (a *API) snapshotFrom(r *http.Request) (store.Backup, error) {
	env := httpmw.Environment(r)
	if err := a.requireSnapshots(); err != nil {
		return store.Backup{}, err
	}
	b, err := a.backups.GetBackup(r.Context(), chi.URLParam(r, "sid"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.EnvironmentID != env.ID) {
		return store.Backup{}, httpapi.NotFound("Snapshot")
	}
	return b, err
}

func (a *API) getSnapshot(w http.ResponseWriter, r *http.Request) {
	b, err := a.snapshotFrom(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"snapshot": toBackupJSON(b)})
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
	env := httpmw.Environment(r)
	var body struct {
		Path string `json:"path"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
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
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Snapshot is not complete",
			Details: "it is " + string(b.Status)})
		return
	}
	if err := a.requireWorkspace(r.Context(), env); err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), restoreJobTimeout)
	defer cancel()
	job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Path: p, Clean: true}
	res, err := a.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
	if err == nil && res.Error != "" {
		err = &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeUnavailable, Message: "The restore failed", Details: res.Error}
	}
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "path": p}
	if err != nil {
		detail["error"] = httpapi.ToError(err).Message
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
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
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
		return "", httpapi.Validation("path must be relative to the workspace directory")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", httpapi.Validation(`path must not contain ".."`)
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
		return nil, httpapi.Validation("from_snapshot: at most 64 characters")
	}
	if err := a.requireSnapshots(); err != nil {
		return nil, err
	}
	b, err := a.backups.GetBackup(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.UserID != caller.ID) {
		return nil, httpapi.Validation("from_snapshot: no snapshot " + id + " of yours")
	}
	if err != nil {
		return nil, err
	}
	if b.Status != store.BackupCompleted {
		return nil, httpapi.Validation("from_snapshot: snapshot " + id + " is " + string(b.Status) + ", not COMPLETED")
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

// Lost volumes: a workspace whose storage is gone when it starts (its
// volume or directory removed while it was stopped, a new host) is restored
// from its latest COMPLETED snapshot. The runtime says when it had to make
// the storage anew (runtime.Instance.StorageCreated), the lifecycle passes
// that on once the environment is RUNNING (AfterStart), and an environment
// that has a completed snapshot, so is not new, gets that snapshot restored
// as a restore or a fork would. Until the restore ends, manual and
// scheduled snapshots and manual restores of it are refused, and a stop
// waits for it (within the pre-stop timeout) before its pre-stop snapshot,
// which it skips if the restore is still going: a snapshot of the
// half-restored workspace would become the latest one. The outcome is
// in the audit log (environment.restore_lost_volume, with the snapshot, the
// time it was taken and the figures), in the server's log, and on the
// environment as its status_reason, which tells the owner which snapshot
// their files came from and that changes made after it were lost.
//
// Limit: a server that stops in the middle of that restore does not take it
// up again when it comes back (the storage exists by then); the
// environment's status_reason still says the restore is under way, and a
// manual restore finishes the job.

// AfterStart is the lifecycle's after-start hook (lifecycle.SetAfterStart):
// see "Lost volumes" above. It returns at once; the restore runs in the
// background.
func (a *API) AfterStart(ctx context.Context, env store.Environment, freshStorage bool) {
	if !freshStorage || a.requireSnapshots() != nil {
		return
	}
	b, err := a.backups.LatestCompletedBackup(ctx, env.ID)
	if errors.Is(err, store.ErrNotFound) {
		// A new environment, or one never snapshotted: nothing to bring
		// back. One whose snapshots all failed lost its files for good,
		// and its owner is told.
		if all, lerr := a.backups.ListBackups(ctx, env.ID); lerr == nil && len(all) > 0 {
			a.log.WarnContext(ctx, "workspace storage was lost and no snapshot of it completed", "environment", env.ID)
			a.reportLostVolume(ctx, env, false, map[string]any{"name": env.Name, "error": "no completed snapshot", "snapshots": len(all)},
				fmt.Sprintf("The workspace's storage was gone when it started, and none of its %d snapshots completed: it starts empty.", len(all)))
		}
		return
	}
	if err != nil {
		a.log.ErrorContext(ctx, "workspace storage was made anew, but its snapshots cannot be looked up; its files are not restored",
			"environment", env.ID, "err", err)
		a.reportLostVolume(ctx, env, false, map[string]any{"name": env.Name, "error": err.Error()},
			fmt.Sprintf("The workspace's storage was gone when it started, and its snapshots could not be looked up (%v): "+
				"restore one by hand (POST /api/v1/environments/%s/snapshots/{snapshot}/restore)", err, env.ID))
		return
	}
	run := &lostVolumeRestore{backupID: b.ID, done: make(chan struct{})}
	if _, busy := a.restoring.LoadOrStore(env.ID, run); busy {
		return
	}
	a.log.WarnContext(ctx, "workspace storage was lost; restoring the latest snapshot", "environment", env.ID, "snapshot", b.ID, "taken_at", b.CreatedAt)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := a.lifecycle.NoteRunning(nctx, env.ID, "restoring_lost_volume", fmt.Sprintf(
		"The workspace's storage was gone when it started; restoring snapshot %s taken %s into it (files appear as it goes).",
		b.ID, b.CreatedAt.UTC().Format(time.RFC3339))); err != nil && !errors.Is(err, lifecycle.ErrNotRunning) {
		a.log.Error("record restore start on the environment", "environment", env.ID, "err", err)
	}
	go a.restoreLostVolume(env, b, run)
}

// restoreLostVolume restores b into env's new, empty workspace and says how
// it went.
func (a *API) restoreLostVolume(env store.Environment, b store.Backup, run *lostVolumeRestore) {
	defer close(run.done)
	defer a.restoring.Delete(env.ID)
	ctx, cancel := context.WithTimeout(context.Background(), restoreJobTimeout)
	defer cancel()
	log := a.log.With("environment", env.ID, "snapshot", b.ID)
	taken := b.CreatedAt.UTC().Format(time.RFC3339)
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "snapshot_id": b.SnapshotID, "trigger": string(b.Trigger),
		"snapshot_taken_at": taken, "snapshot_files": b.FileCount, "snapshot_bytes": b.SizeBytes}
	job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Clean: true}
	res, err := a.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	var reason string
	switch {
	case err != nil:
		detail["error"] = err.Error()
		log.Error("lost volume: restore failed", "err", err)
		reason = fmt.Sprintf("The workspace's storage was gone when it started; restoring snapshot %s (taken %s) failed: %v. "+
			"The workspace is empty: restore it by hand (POST /api/v1/environments/%s/snapshots/%s/restore)", b.ID, taken, err, env.ID, b.ID)
	default:
		if res.Restore != nil {
			detail["files"] = res.Restore.Files
			detail["bytes"] = res.Restore.Bytes
		}
		detail["failed"] = len(res.Failures)
		log.Info("lost volume: restored", "files", detail["files"], "bytes", detail["bytes"], "failed", len(res.Failures))
		reason = fmt.Sprintf("The workspace's storage was gone when it started; its files were restored from snapshot %s taken %s. "+
			"Changes made after that were lost.", b.ID, taken)
		if n := len(res.Failures); n > 0 {
			paths := make([]string, 0, min(n, 5))
			for _, f := range res.Failures[:min(n, 5)] {
				paths = append(paths, f.Path)
			}
			reason += fmt.Sprintf(" %d entries could not be restored (%s).", n, strings.Join(paths, ", "))
		}
	}
	a.reportLostVolume(ctx, env, err == nil && len(res.Failures) == 0, detail, reason)
}

// reportLostVolume tells the owner how a lost volume's restore went, as
// the status reason of the (RUNNING) environment (lifecycle.NoteRunning; an
// environment stopped meanwhile keeps the audit log's record only), then
// records it in the audit log: once the audit event is there, all is told.
func (a *API) reportLostVolume(ctx context.Context, env store.Environment, success bool, detail map[string]any, reason string) {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := a.lifecycle.NoteRunning(nctx, env.ID, "restored_lost_volume", reason); err != nil && !errors.Is(err, lifecycle.ErrNotRunning) {
		a.log.Error("record restore outcome on the environment", "environment", env.ID, "err", err)
	}
	a.auditSystem(ctx, "environment.restore_lost_volume", env.ID, success, detail)
}

// auditSystem records something the server did on its own.
func (a *API) auditSystem(ctx context.Context, action, envID string, success bool, detail map[string]any) {
	e := store.AuditEvent{CreatedAt: a.now(), ActorKind: store.ActorSystem, Action: action, ObjectType: "environment",
		ObjectID: envID, Detail: detail, Success: success}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := a.store.InsertAuditEvent(actx, e); err != nil {
		a.log.Error("record audit event", "action", action, "environment", envID, "err", err)
	}
}

// lostVolumeRestore is a restore in progress (API.restoring); done closes
// when it has ended and been reported.
type lostVolumeRestore struct {
	backupID string
	done     chan struct{}
}

// requireNotRestoring refuses snapshot work on an environment whose lost
// storage is being restored.
func (a *API) requireNotRestoring(envID string) error {
	v, ok := a.restoring.Load(envID)
	if !ok {
		return nil
	}
	return &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "The workspace is being restored",
		Details: fmt.Sprintf("its storage was gone when it started; snapshot %s is being restored into it (the environment's status_reason tells when it is done)",
			v.(*lostVolumeRestore).backupID)}
}

// awaitRestore waits, until ctx ends, for a lost volume's restore of envID
// in progress to end, and reports whether none is left running.
func (a *API) awaitRestore(ctx context.Context, envID string) bool {
	v, ok := a.restoring.Load(envID)
	if !ok {
		return true
	}
	select {
	case <-v.(*lostVolumeRestore).done:
		return true
	case <-ctx.Done():
		return false
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
		if !a.tunnels.Connected(env.ID) || a.requireNotRestoring(env.ID) != nil {
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

// verifySnapshots checks the whole repository (admins only: RequireAdmin): every
// snapshot's record and trees decode, and every chunk they use is there and
// matches its hash. 200 with the report either way; `ok` says whether the
// repository is intact.
func (a *API) verifySnapshots(w http.ResponseWriter, r *http.Request) {
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
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ok": report.OK(), "report": report})
}

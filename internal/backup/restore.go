package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
)

// Restore restores the COMPLETED snapshot b into env's running workspace:
// the workspace directory (or the entry at path) becomes exactly the
// snapshot's (see snapshot.Job.Clean). It returns when the restore is done;
// entries that could not be restored are in the result's Failures. A
// failed job's error is the result's Error, returned as an error.
func (s *Service) Restore(ctx context.Context, env store.Environment, b store.Backup, path string) (snapshot.JobResult, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreJobTimeout)
	defer cancel()
	job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Path: path, Clean: true}
	return s.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
}

// Forks: POST /environments with from_snapshot creates an environment as
// usual; once it is RUNNING and its supervisor has connected, the service
// restores the snapshot into its (new, otherwise empty or template-filled)
// workspace, exactly as a restore does. Until then the workspace does not
// have the files yet: a client that must see them waits for the audit event
// snapshot.fork (success or not, with the figures), or for the files.

// Fork restores b into the new environment env in the background once it
// runs, and records the outcome in the audit log.
func (s *Service) Fork(env store.Environment, b store.Backup) {
	// Registered now, not once the fork runs: from its create on, the API
	// says it is being restored (restoring_snapshot), so a client can
	// wait for its files, and snapshot work on it waits.
	run := &restoreRun{backupID: b.ID, done: make(chan struct{})}
	s.restoring.Store(env.ID, run)
	if !s.jobs.start(func(ctx context.Context) { s.restoreFork(ctx, env, b, run) }) {
		s.endRestore(env.ID, run)
		s.auditSystem(context.Background(), "snapshot.fork", env.ID, false, map[string]any{"name": env.Name, "snapshot": b.ID,
			"source_environment_id": b.EnvironmentID, "error": errShuttingDown.Error()})
	}
}

func (s *Service) restoreFork(ctx context.Context, env store.Environment, b store.Backup, run *restoreRun) {
	ctx, cancel := context.WithTimeout(ctx, restoreJobTimeout)
	defer cancel()
	log := s.log.With("environment", env.ID, "from_snapshot", b.ID)
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "source_environment_id": b.EnvironmentID}
	taken := b.CreatedAt.UTC().Format(time.RFC3339)
	var res snapshot.JobResult
	cur, err := s.envs.WaitFor(ctx, env.ID, func(e store.Environment) bool {
		return e.Status != store.StatusCreating && e.Status != store.StatusStarting
	})
	if err == nil && cur.Status != store.StatusRunning {
		err = fmt.Errorf("the environment is %s, not RUNNING", cur.Status)
	}
	running := err == nil
	if running {
		s.noteRunning(ctx, env.ID, "restoring_fork", fmt.Sprintf(
			"Restoring the files of snapshot %s (taken %s) into this new workspace; they appear as it goes.", b.ID, taken), nil)
		job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Clean: true}
		res, err = s.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
		if err == nil && res.Error != "" {
			err = errors.New(res.Error)
		}
	}
	if err != nil && cutShort(ctx) {
		err = fmt.Errorf("the server shut down before the fork's files were restored: %w", err)
	}
	var reason string
	if err != nil {
		log.Warn("fork: restore failed", "err", err)
		detail["error"] = err.Error()
		reason = fmt.Sprintf("Restoring the files of snapshot %s into this new workspace failed: %v. "+
			"Delete it and fork again, or restore a snapshot into it by hand.", b.ID, err)
	} else {
		if res.Restore != nil {
			detail["files"] = res.Restore.Files
			detail["bytes"] = res.Restore.Bytes
		}
		detail["failed"] = len(res.Failures)
		log.Info("fork: restored", "files", detail["files"], "failed", len(res.Failures))
		reason = fmt.Sprintf("Its files were restored from snapshot %s taken %s.", b.ID, taken)
		if n := len(res.Failures); n > 0 {
			reason += fmt.Sprintf(" %d entries could not be restored (%s).", n, failedPaths(res.Failures))
		}
	}
	// The restore ends once the note is stored and before anybody is told
	// (settled): a client that sees restoring_snapshot gone sees the note
	// saying how it went, and one that saw it set hears of its end.
	end := func() { s.endRestore(env.ID, run) }
	if running {
		s.noteRunning(ctx, env.ID, "restored_fork", reason, end)
	} else {
		end()
	}
	s.auditSystem(ctx, "snapshot.fork", env.ID, err == nil && len(res.Failures) == 0, detail)
}

// noteRunning tells the owner of a RUNNING environment what happened to
// it, as its status reason (lifecycle.NoteRunning, which runs settled in
// every case), even past a cancelled ctx; one stopped meanwhile is not told.
func (s *Service) noteRunning(ctx context.Context, envID, kind, reason string, settled func()) {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	if _, err := s.envs.NoteRunning(nctx, envID, kind, reason, settled); err != nil && !errors.Is(err, lifecycle.ErrNotRunning) {
		s.log.Error("record on the environment", "environment", envID, "kind", kind, "err", err)
	}
}

// failedPaths names up to five entries a restore could not write.
func failedPaths(failures []snapshot.JobFailure) string {
	paths := make([]string, 0, min(len(failures), 5))
	for _, f := range failures[:min(len(failures), 5)] {
		paths = append(paths, f.Path)
	}
	return strings.Join(paths, ", ")
}

// endRestore records that the restore run of envID has ended.
func (s *Service) endRestore(envID string, run *restoreRun) {
	s.restoring.CompareAndDelete(envID, run)
	close(run.done)
}

// Lost volumes: a workspace whose storage is gone when it starts (its
// volume or directory removed while it was stopped, a new host) is restored
// from its latest COMPLETED snapshot. The runtime says when it had to make
// the storage anew (runtime.Instance.StorageCreated), the lifecycle passes
// that on once the environment is RUNNING (AfterStart), and an environment
// that has a completed snapshot, so is not new, gets that snapshot restored
// as a restore or a fork would. Until the restore ends, manual and
// scheduled snapshots and manual restores of it are refused (Restoring),
// and a stop waits for it (within the pre-stop timeout) before its pre-stop
// snapshot, which it skips if the restore is still going: a snapshot of the
// half-restored workspace would become the latest one. The outcome is in
// the audit log (environment.restore_lost_volume, with the snapshot, the
// time it was taken and the figures), in the server's log, and on the
// environment as its status_reason, which tells the owner which snapshot
// their files came from and that changes made after it were lost.
//
// Limit: a server that shuts down in the middle of that restore cancels it
// and says so (status_reason and audit log), but does not take it up again
// when it comes back (the storage exists by then): a manual restore
// finishes the job.

// AfterStart is the lifecycle's AfterStart hook: see "Lost volumes" above.
// It returns at once; the restore runs in the background.
func (s *Service) AfterStart(ctx context.Context, env store.Environment, freshStorage bool) {
	if !freshStorage || !s.Available() {
		return
	}
	b, err := s.store.LatestCompletedBackup(ctx, env.ID)
	if err != nil && ctx.Err() != nil {
		// The server is shutting down (or the operation timed out) while
		// it asked: ask once more past that, so a new environment — the
		// usual fresh storage — is not reported as one whose snapshots
		// could not be looked up.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
		b, err = s.store.LatestCompletedBackup(lctx, env.ID)
		cancel()
	}
	if errors.Is(err, store.ErrNotFound) {
		// A new environment, or one never snapshotted: nothing to bring
		// back. One whose snapshots all failed lost its files for good,
		// and its owner is told.
		if all, lerr := s.store.ListBackups(ctx, env.ID); lerr == nil && len(all) > 0 {
			s.log.WarnContext(ctx, "workspace storage was lost and no snapshot of it completed", "environment", env.ID)
			s.reportLostVolume(ctx, env, nil, false, map[string]any{"name": env.Name, "error": "no completed snapshot", "snapshots": len(all)},
				fmt.Sprintf("The workspace's storage was gone when it started, and none of its %d snapshots completed: it starts empty.", len(all)))
		}
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "workspace storage was made anew, but its snapshots cannot be looked up; its files are not restored",
			"environment", env.ID, "err", err)
		s.reportLostVolume(ctx, env, nil, false, map[string]any{"name": env.Name, "error": err.Error()},
			fmt.Sprintf("The workspace's storage was gone when it started, and its snapshots could not be looked up (%v): "+
				"restore one by hand (POST /api/v1/environments/%s/snapshots/{snapshot}/restore)", err, env.ID))
		return
	}
	run := &restoreRun{backupID: b.ID, done: make(chan struct{})}
	if _, busy := s.restoring.LoadOrStore(env.ID, run); busy {
		return
	}
	s.log.WarnContext(ctx, "workspace storage was lost; restoring the latest snapshot", "environment", env.ID, "snapshot", b.ID, "taken_at", b.CreatedAt)
	s.noteRunning(ctx, env.ID, "restoring_lost_volume", fmt.Sprintf(
		"The workspace's storage was gone when it started; restoring snapshot %s taken %s into it (files appear as it goes).",
		b.ID, b.CreatedAt.UTC().Format(time.RFC3339)), nil)
	if !s.jobs.start(func(ctx context.Context) { s.restoreLostVolume(ctx, env, b, run) }) {
		// Shutting down: the restore is reported as not done, like one
		// that shutdown cut short.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancel()
		s.restoreLostVolume(cctx, env, b, run)
	}
}

// restoreLostVolume restores b into env's new, empty workspace and says how
// it went.
func (s *Service) restoreLostVolume(ctx context.Context, env store.Environment, b store.Backup, run *restoreRun) {
	ctx, cancel := context.WithTimeout(ctx, restoreJobTimeout)
	defer cancel()
	log := s.log.With("environment", env.ID, "snapshot", b.ID)
	taken := b.CreatedAt.UTC().Format(time.RFC3339)
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "snapshot_id": b.SnapshotID, "trigger": string(b.Trigger),
		"snapshot_taken_at": taken, "snapshot_files": b.FileCount, "snapshot_bytes": b.SizeBytes}
	var res snapshot.JobResult
	var err error
	if cutShort(ctx) {
		err = errShuttingDown
	} else {
		job := snapshot.Job{Op: snapshot.JobRestore, Snapshot: b.SnapshotID, Clean: true}
		res, err = s.runJob(ctx, env.ID, job, snapshot.Access{ReadSnapshots: []string{b.SnapshotID}})
		if err == nil && res.Error != "" {
			err = errors.New(res.Error)
		}
	}
	var reason string
	switch {
	case err != nil && cutShort(ctx):
		detail["error"] = err.Error()
		log.Error("lost volume: restore cut short by shutdown", "err", err)
		reason = fmt.Sprintf("The workspace's storage was gone when it started; restoring snapshot %s (taken %s) was cut short "+
			"because the server shut down: the workspace may be partly restored. Restore it by hand (POST /api/v1/environments/%s/snapshots/%s/restore)",
			b.ID, taken, env.ID, b.ID)
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
			reason += fmt.Sprintf(" %d entries could not be restored (%s).", n, failedPaths(res.Failures))
		}
	}
	s.reportLostVolume(ctx, env, func() { s.endRestore(env.ID, run) }, err == nil && len(res.Failures) == 0, detail, reason)
}

// reportLostVolume tells the owner how a lost volume's restore went, as
// the status reason of the (RUNNING) environment (lifecycle.NoteRunning; an
// environment stopped meanwhile keeps the audit log's record only), then
// records it in the audit log: once the audit event is there, all is told.
// settled (the restore's end) runs with the note, as a fork's does.
func (s *Service) reportLostVolume(ctx context.Context, env store.Environment, settled func(), success bool, detail map[string]any, reason string) {
	s.noteRunning(ctx, env.ID, "restored_lost_volume", reason, settled)
	s.auditSystem(ctx, "environment.restore_lost_volume", env.ID, success, detail)
}

// restoreRun is a restore in progress (Service.restoring): a lost volume's
// or a fork's; done closes when it has ended.
type restoreRun struct {
	backupID string
	done     chan struct{}
}

// Restoring reports whether envID's workspace is being restored (its lost
// storage, or a fork's files), and from which snapshot record: snapshot work
// on it waits until that ends. A nil Service restores nothing.
func (s *Service) Restoring(envID string) (backupID string, ok bool) {
	if s == nil {
		return "", false
	}
	v, ok := s.restoring.Load(envID)
	if !ok {
		return "", false
	}
	return v.(*restoreRun).backupID, true
}

// awaitRestore waits, until ctx ends, for a lost volume's restore of envID
// in progress to end, and reports whether none is left running.
func (s *Service) awaitRestore(ctx context.Context, envID string) bool {
	v, ok := s.restoring.Load(envID)
	if !ok {
		return true
	}
	select {
	case <-v.(*restoreRun).done:
		return true
	case <-ctx.Done():
		return false
	}
}

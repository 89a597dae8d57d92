package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
)

// InProgressError refuses a snapshot while another of the same environment
// is PENDING or RUNNING.
type InProgressError struct{ Backup store.Backup }

func (e *InProgressError) Error() string {
	return "snapshot " + e.Backup.ID + " is " + string(e.Backup.Status)
}

// CreateManual records a MANUAL snapshot of env, PENDING; Start runs it.
// One at a time per environment (*InProgressError otherwise): the
// supervisor runs them one after the other anyway, and a queue of them
// would only hold streams open.
func (s *Service) CreateManual(ctx context.Context, env store.Environment) (store.Backup, error) {
	if last, err := s.store.LatestBackup(ctx, env.ID); err == nil && (last.Status == store.BackupPending || last.Status == store.BackupRunning) {
		return store.Backup{}, &InProgressError{Backup: last}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Backup{}, err
	}
	return s.store.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupManual})
}

// Start takes the snapshot b (made by CreateManual) in the background; its
// record follows it. Once the server is shutting down the snapshot is
// recorded as failed instead.
func (s *Service) Start(env store.Environment, b store.Backup) {
	if !s.jobs.start(func(ctx context.Context) { s.runSnapshot(ctx, env, b) }) {
		s.finishSnapshot(context.Background(), b, store.BackupResult{Error: errShuttingDown.Error()})
	}
}

// PreStopSnapshot takes a PRE_SHUTDOWN snapshot of an environment about to
// be stopped (the lifecycle's BeforeStop hook, bounded by its timeout,
// before every stop: a user's or the idle reaper's). It always runs when
// the workspace is connected — incremental, it reads only files that
// changed — so that work written just before the stop is kept, even by a
// program nobody was typing into. Its record tells the outcome; a failure
// does not hold the stop back.
func (s *Service) PreStopSnapshot(ctx context.Context, env store.Environment) {
	if !s.Available() {
		return
	}
	// The stop lets the restore of a lost volume finish first, within its
	// time (the restore may still be waiting for the supervisor to
	// connect). Half restored, the workspace is not worth a snapshot: it
	// would become the latest one, ahead of the one being restored.
	if !s.awaitRestore(ctx, env.ID) {
		s.log.WarnContext(ctx, "pre-stop snapshot skipped: the workspace was still being restored after its storage was lost", "environment", env.ID)
		return
	}
	if !s.tunnels.Reachable(ctx, env.ID) {
		return
	}
	b, err := s.store.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupPreShutdown})
	if err != nil {
		s.log.ErrorContext(ctx, "pre-stop snapshot", "environment", env.ID, "err", err)
		return
	}
	s.runSnapshot(ctx, env, b)
}

// runSnapshot asks the environment's supervisor to snapshot its workspace
// and records the outcome. The record always ends COMPLETED or FAILED, even
// when ctx is cancelled (the server shutting down): it is written outside
// ctx.
func (s *Service) runSnapshot(ctx context.Context, env store.Environment, b store.Backup) {
	ctx, cancel := context.WithTimeout(ctx, snapshotJobTimeout)
	defer cancel()
	log := s.log.With("environment", env.ID, "snapshot", b.ID)
	if err := s.store.StartBackup(ctx, b.ID); err != nil {
		log.Error("start snapshot", "err", err)
		s.finishSnapshot(ctx, b, store.BackupResult{Error: err.Error()})
		return
	}
	job := snapshot.Job{Op: snapshot.JobSnapshot, Source: env.ID}
	var access snapshot.Access
	access.AllowCreate = true
	if prev, err := s.store.LatestCompletedBackup(ctx, env.ID); err == nil {
		job.Parent = prev.SnapshotID
		access.ReadSnapshots = []string{prev.SnapshotID}
	} else if !errors.Is(err, store.ErrNotFound) {
		s.finishSnapshot(ctx, b, store.BackupResult{Error: err.Error()})
		return
	}
	start := time.Now()
	res, err := s.runJob(ctx, env.ID, job, access)
	switch {
	case err != nil && cutShort(ctx):
		// The server is shutting down. As when the stream breaks, the
		// snapshot record was never written.
		err = fmt.Errorf("the server shut down during the snapshot; "+
			"this snapshot is incomplete and was discarded, earlier ones are intact: %w", err)
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
		s.finishSnapshot(ctx, b, store.BackupResult{Error: err.Error(), Duration: time.Since(start)})
		return
	}
	st := res.Snapshot.Stats
	s.finishSnapshot(ctx, b, store.BackupResult{SnapshotID: res.Snapshot.ID, SizeBytes: st.BytesScanned, ChangedBytes: st.NewBytes,
		FileCount: st.Files, Duration: time.Since(start)})
}

// finishSnapshot records a snapshot job's outcome, whatever became of ctx,
// and reports it to the observer.
func (s *Service) finishSnapshot(ctx context.Context, b store.Backup, res store.BackupResult) {
	if s.obs != nil {
		var err error
		if res.Error != "" {
			err = errors.New(res.Error)
		}
		s.obs.SnapshotDone(string(b.Trigger), res.Duration, res.SizeBytes, res.ChangedBytes, err)
	}
	if err := s.store.FinishBackup(context.WithoutCancel(ctx), b.ID, res); err != nil {
		s.log.Error("record snapshot", "environment", b.EnvironmentID, "snapshot", b.ID, "err", err)
	}
}

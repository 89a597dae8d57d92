package backup

import (
	"context"
	"errors"
	"time"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
)

// Schedule paces SCHEDULED snapshots and pruning. Zero values take the
// defaults.
type Schedule struct {
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

func (c Schedule) withDefaults() Schedule {
	if c.Interval <= 0 {
		c.Interval = 15 * time.Minute
	}
	if c.Retention == (snapshot.Retention{}) {
		c.Retention = snapshot.DefaultRetention
	}
	c.Retention.KeepLast = max(c.Retention.KeepLast, 1)
	c.Retention.KeepDaily = max(c.Retention.KeepDaily, 0)
	if c.PruneInterval <= 0 {
		c.PruneInterval = 24 * time.Hour
	}
	return c
}

// runSchedule takes SCHEDULED snapshots and prunes the repository until
// ctx ends. Every Interval it snapshots, one after the other, each RUNNING
// environment whose last activity is after its newest snapshot (started,
// or none yet) and whose newest snapshot is at least Interval old; an
// environment with a snapshot in progress is skipped. Every PruneInterval
// it forgets the snapshots Retention does not keep, deletes their records
// and the chunks nothing uses any more (safe while snapshots are being
// written: see snapshot.Repo.Prune).
func (s *Service) runSchedule(ctx context.Context) {
	t := time.NewTicker(s.sched.Interval)
	defer t.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.scheduledSnapshots(ctx, s.sched.Interval)
		if time.Since(lastPrune) >= s.sched.PruneInterval && ctx.Err() == nil {
			lastPrune = time.Now()
			if err := s.prune(ctx, s.sched.Retention); err != nil && ctx.Err() == nil {
				s.log.Error("prune snapshots", "err", err)
			}
		}
	}
}

func (s *Service) scheduledSnapshots(ctx context.Context, interval time.Duration) {
	envs, _, err := s.store.ListEnvironments(ctx, store.EnvironmentFilter{Statuses: []store.Status{store.StatusRunning}})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("scheduled snapshots: list environments", "err", err)
		}
		return
	}
	now := s.now()
	for _, env := range envs {
		if ctx.Err() != nil {
			return
		}
		last, err := s.store.LatestBackup(ctx, env.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.log.Error("scheduled snapshots: latest", "environment", env.ID, "err", err)
			continue
		case last.Status == store.BackupPending || last.Status == store.BackupRunning,
			now.Sub(last.CreatedAt) < interval, !env.LastAccessedAt.After(last.CreatedAt):
			continue
		}
		if _, restoring := s.Restoring(env.ID); restoring || !s.tunnels.Reachable(ctx, env.ID) {
			continue
		}
		b, err := s.store.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: env.UserID, Trigger: store.BackupScheduled})
		if err != nil {
			s.log.Error("scheduled snapshot", "environment", env.ID, "err", err)
			continue
		}
		s.runSnapshot(ctx, env, b)
	}
}

// prune applies retention to the repository and drops the records of the
// snapshots it forgot.
func (s *Service) prune(ctx context.Context, ret snapshot.Retention) error {
	repo, err := snapshot.Open(ctx, s.repo)
	if err != nil {
		return err
	}
	rep, err := repo.Prune(ctx, snapshot.PruneOptions{Retention: ret})
	if err != nil {
		return err
	}
	n, err := s.store.DeleteBackupsBySnapshot(ctx, rep.Forgotten)
	s.log.Info("snapshots pruned", "forgotten", len(rep.Forgotten), "records_deleted", n, "blobs_deleted", rep.BlobsDeleted, "bytes_deleted", rep.BytesDeleted)
	return err
}

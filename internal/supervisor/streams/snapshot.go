package streams

import (
	"context"
	"fmt"
	"net"
	"sync"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/tunnel"
)

// jobMu runs one snapshot or restore at a time per supervisor: two at once
// would race on the workspace's files.
var jobMu sync.Mutex

// serveSnapshot runs a snapshot job (tunnel.ServiceSnapshot): it snapshots
// the workspace directory, or restores a snapshot into it, on a repository
// the server serves over the stream. The supervisor never learns where the
// repository is or holds credentials for it.
func (s *Streams) serveSnapshot(ctx context.Context, conn net.Conn) {
	if tunnel.WriteReply(conn, tunnel.Reply{OK: true}) != nil {
		return
	}
	job, rs, err := snapshot.AcceptJob(conn)
	if err != nil {
		s.log.Warn("snapshot job", "err", err)
		return
	}
	defer rs.Close()
	jobMu.Lock()
	res := s.runSnapshotJob(ctx, job, rs)
	jobMu.Unlock()
	if err := rs.Finish(res); err != nil {
		s.log.Warn("snapshot job: report", "err", err)
	}
}

func (s *Streams) runSnapshotJob(ctx context.Context, job snapshot.Job, rs *snapshot.RemoteStore) snapshot.JobResult {
	fail := func(err error) snapshot.JobResult { return snapshot.JobResult{Error: err.Error()} }
	repo, err := snapshot.Open(ctx, rs)
	if err != nil {
		return fail(err)
	}
	dir := s.cfg.WorkspaceDir
	switch job.Op {
	case snapshot.JobSnapshot:
		snap, err := repo.Snapshot(ctx, dir, snapshot.Options{
			Source: job.Source, Parent: job.Parent, NoParent: job.Parent == "", Excludes: job.Excludes,
		})
		if err != nil {
			return fail(err)
		}
		s.log.Info("snapshot taken", "snapshot", snap.ID, "files", snap.Stats.Files, "newBytes", snap.Stats.NewBytes, "duration", snap.Stats.Duration)
		return snapshot.JobResult{Snapshot: &snap}
	case snapshot.JobRestore:
		var res snapshot.JobResult
		if job.Clean {
			n, err := repo.RemoveUnlisted(ctx, job.Snapshot, dir, job.Path)
			if err != nil {
				return fail(err)
			}
			res.Removed = n
		}
		st, err := repo.Restore(ctx, job.Snapshot, dir, snapshot.RestoreOptions{Path: job.Path})
		res.Restore = &st
		res.Failures = snapshot.RestoreFailures(err)
		if err != nil && len(res.Failures) == 0 {
			res.Error = err.Error()
		}
		s.log.Info("snapshot restored", "snapshot", job.Snapshot, "path", job.Path, "files", st.Files, "failed", st.Failed, "removed", res.Removed)
		return res
	}
	return fail(fmt.Errorf("unknown snapshot job %q", job.Op))
}

package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// waitAudit waits until the audit log holds n events of action on objectID
// and returns them. The events are written by background work that
// nothing else announces, so the log is polled.
func (ts *testServer) waitAudit(t *testing.T, action, objectID string, n int) []store.AuditEvent {
	t.Helper()
	var events []store.AuditEvent
	wait.Succeeds(wait.Context(t, 3*time.Minute), t, fmt.Sprintf("%d %s audit events for %s", n, action, objectID), func() error {
		var err error
		events, _, err = ts.srv.Store.ListAuditEvents(ts.ctx, store.AuditFilter{Action: action, ObjectID: objectID})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) >= n {
			return nil
		}
		return fmt.Errorf("%d so far", len(events))
	})
	return events
}

// TestLostVolumeRestore: a workspace whose directory was removed while it
// was stopped starts with its files back from its latest snapshot; the
// owner sees which snapshot in status_reason and the audit log records it.
// A new environment (no snapshot) and a plain restart restore nothing; one
// whose snapshots all failed starts empty, and its owner is told.
func TestLostVolumeRestore(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "lost"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)

	ts.sshRun(t, token, env.ID, "mkdir -p src/empty && printf 'package main\\n' > src/main.go && chmod 755 src/main.go && ln -s src/main.go link")
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "notes/todo.txt": "buy milk\n"})
	want := readFiles(t, dir)
	ts.snapshotWithin(t, token, env.ID, time.Minute)

	// The stop takes a PRE_SHUTDOWN snapshot: the latest one, restored below.
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ada := ts.client(token)
	list, err := ada.Snapshots(ts.ctx, env.ID)
	if err != nil || len(list) != 2 || list[0].Trigger != "PRE_SHUTDOWN" || list[0].Status != sdk.SnapshotCompleted {
		t.Fatalf("snapshots after the stop: %+v, %v", list, err)
	}
	latest := list[0]

	// The disk loses the workspace while it is stopped.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ts.startEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ev := ts.waitAudit(t, "environment.restore_lost_volume", env.ID, 1)[0]
	if !ev.Success || ev.ActorKind != store.ActorSystem || ev.Detail["snapshot"] != latest.ID || ev.Detail["snapshot_taken_at"] == nil {
		t.Fatalf("audit event %+v, want a successful restore of %s", ev, latest.ID)
	}
	sameFiles(t, "after the lost volume was restored", want, readFiles(t, dir))
	if fi, err := os.Stat(filepath.Join(dir, "src/empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not restored: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "src/main.go")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("src/main.go mode after restore: %v, %v", fi, err)
	}

	// The owner is told where the files came from and what was lost (the
	// reason is set before the audit event is written).
	got, err := ada.GetEnvironment(ts.ctx, env.ID)
	if err != nil || got.StatusReason == "" {
		t.Fatalf("get: %+v, %v; want a status_reason", got, err)
	}
	if r := got.StatusReason; got.Status != sdk.StatusRunning || !strings.Contains(r, latest.ID) || !strings.Contains(r, "lost") {
		t.Errorf("status_reason %q (status %s), want the snapshot %s and what was lost", r, got.Status, latest.ID)
	}

	// A plain restart restores nothing; snapshots go on as usual.
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ts.startEnv(token, env.ID)
	if e := ts.waitStatus(token, env.ID, sdk.StatusRunning); e.StatusReason != "" {
		t.Errorf("status_reason after a plain restart: %q", e.StatusReason)
	}
	ts.sshRun(t, token, env.ID, "true") // its supervisor has connected
	ts.snapshotWithin(t, token, env.ID, time.Minute)
	if events := ts.waitAudit(t, "environment.restore_lost_volume", env.ID, 1); len(events) != 1 {
		t.Errorf("%d restore_lost_volume events, want 1: %+v", len(events), events)
	}

	// A brand-new environment, never snapshotted, triggers nothing.
	fresh := ts.create(token, sdk.CreateEnvironmentRequest{Name: "fresh"})
	ts.waitStatus(token, fresh.ID, sdk.StatusRunning)
	ts.sshRun(t, token, fresh.ID, "true")              // its supervisor has connected
	ts.snapshotWithin(t, token, fresh.ID, time.Minute) // refused (409) while a restore ran
	events, _, err := ts.srv.Store.ListAuditEvents(ts.ctx, store.AuditFilter{Action: "environment.restore_lost_volume", ObjectID: fresh.ID})
	if err != nil || len(events) != 0 {
		t.Errorf("new environment: restore_lost_volume events %+v, %v", events, err)
	}

	// One whose only snapshot failed has nothing to come back from; its
	// owner is told the files are gone. (Its supervisor is killed so that
	// the stop takes no pre-stop snapshot.)
	doomed := ts.create(token, sdk.CreateEnvironmentRequest{Name: "doomed"})
	ts.waitStatus(token, doomed.ID, sdk.StatusRunning)
	rec, err := ts.srv.Store.GetEnvironment(ts.ctx, doomed.ID)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ts.srv.Store.CreateBackup(ts.ctx, store.Backup{EnvironmentID: doomed.ID, UserID: rec.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Store.FinishBackup(ts.ctx, bad.ID, store.BackupResult{Error: "test"}); err != nil {
		t.Fatal(err)
	}
	doomedDir := ts.workspaceDir(doomed.ID)
	if err := syscall.Kill(ts.supervisorPID(t, doomed.ID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(token, doomed.ID, sdk.StatusError)
	ts.stopEnv(token, doomed.ID)
	ts.waitStatus(token, doomed.ID, sdk.StatusStopped)
	if err := os.RemoveAll(doomedDir); err != nil {
		t.Fatal(err)
	}
	ts.startEnv(token, doomed.ID)
	ts.waitStatus(token, doomed.ID, sdk.StatusRunning)
	if ev := ts.waitAudit(t, "environment.restore_lost_volume", doomed.ID, 1)[0]; ev.Success {
		t.Errorf("lost storage without a completed snapshot: audit event %+v, want a failure", ev)
	}
	if got, err := ada.GetEnvironment(ts.ctx, doomed.ID); err != nil ||
		!strings.Contains(got.StatusReason, "snapshots completed: it starts empty") {
		t.Errorf("status_reason after losing storage without a completed snapshot: %+v, %v", got, err)
	}
}

// supervisorPID is the pid of a local workspace's supervisor, from the
// runtime's state file (<environment dir>/state.json).
func (ts *testServer) supervisorPID(t *testing.T, envID string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(ts.workspaceDir(envID)), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.PID <= 0 {
		t.Fatalf("state.json: pid %d, %v", st.PID, err)
	}
	return st.PID
}

// countBlobs counts the chunks (and trees) stored in the server's snapshot
// repository.
func (ts *testServer) countBlobs(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(ts.dataDir, "backups", "data"), func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a temp file renamed away under our feet
			}
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// getSnapshot returns a snapshot's record as the API shows it.
func (ts *testServer) getSnapshot(t *testing.T, token, envID, id string) sdk.Snapshot {
	t.Helper()
	got, err := ts.client(token).GetSnapshot(ts.ctx, envID, id)
	if err != nil {
		t.Fatalf("get snapshot %s: %v", id, err)
	}
	return *got
}

// randomFile writes size bytes that do not compress or deduplicate.
func randomFile(t *testing.T, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	if _, err := io.CopyN(f, rng, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKillSupervisorMidSnapshot: kill -9 the workspace's supervisor while
// it is sending a snapshot. The snapshot ends FAILED with the reason, the
// environment goes to ERROR with the reason, the repository verifies clean,
// and once started again the earlier snapshot restores and the next
// snapshot succeeds.
func TestKillSupervisorMidSnapshot(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("admin@example.com") // the first user is an admin
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "killed"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)
	ts.sshRun(t, token, env.ID, "true") // its supervisor has connected
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "src/main.go": "package main\n"})
	want := readFiles(t, dir)
	first := ts.snapshotWithin(t, token, env.ID, time.Minute)

	// Enough data that the snapshot is still sending chunks when the
	// first of them lands in the repository.
	randomFile(t, filepath.Join(dir, "big.bin"), 64<<20, 1)
	blobs := ts.countBlobs(t)
	pid := ts.supervisorPID(t, env.ID)
	admin := ts.client(token)
	created, err := admin.CreateSnapshot(ts.ctx, env.ID)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Followed in the store: see snapshotWithin.
	// Looked at every few milliseconds: the snapshot runs only briefly.
	wait.Eventually(wait.Context(t, wait.Long), t, "the snapshot to send something", func() bool {
		b, err := ts.srv.Store.GetBackup(ts.ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status == store.BackupCompleted || b.Status == store.BackupFailed {
			t.Fatalf("the snapshot ended (%s %s) before it could be killed", b.Status, b.Error)
		}
		return b.Status == store.BackupRunning && ts.countBlobs(t) > blobs
	}, wait.Every(5*time.Millisecond))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("supervisor %d killed with %d chunks of the snapshot stored", pid, ts.countBlobs(t)-blobs)

	// The record ends FAILED, saying why; nothing waits for a timeout.
	wait.Succeeds(wait.Context(t, wait.Long), t, "the snapshot to end after its supervisor was killed", func() error {
		b, err := ts.srv.Store.GetBackup(ts.ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status != store.BackupPending && b.Status != store.BackupRunning {
			return nil
		}
		return fmt.Errorf("still %s", b.Status)
	})
	failed := ts.getSnapshot(t, token, env.ID, created.ID)
	t.Logf("killed snapshot: %s: %s", failed.Status, failed.Error)
	if failed.Status != sdk.SnapshotFailed || !strings.Contains(failed.Error, "the workspace stopped answering") {
		t.Fatalf("killed snapshot = %+v, want FAILED saying the workspace stopped answering", failed)
	}
	if !strings.Contains(failed.Error, "supervisor went away during the snapshot") {
		// The stream's error was not one of those read as the supervisor
		// going away (EOF, a closed connection): worth knowing, not wrong.
		t.Logf("the killed snapshot's error does not say the supervisor went away: %s", failed.Error)
	}

	// The lifecycle notices the exit: ERROR, with the reason.
	errEnv := ts.waitStatus(token, env.ID, sdk.StatusError)
	if !strings.Contains(errEnv.StatusReason, "killed") {
		t.Fatalf("status_reason after the kill: %q, want the signal", errEnv.StatusReason)
	}
	t.Logf("environment: ERROR: %s", errEnv.StatusReason)

	// The repository is intact: the dead snapshot's chunks are only
	// unreferenced leftovers (for pruning), nothing visible is damaged.
	if verify, err := admin.VerifySnapshots(ts.ctx); err != nil || !verify.OK {
		t.Fatalf("verify after the kill: %+v, %v", verify, err)
	}
	repo, err := snapshot.OpenDirStore(filepath.Join(ts.dataDir, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	locks, err := repo.ListRecords(ts.ctx, snapshot.KindLock)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the kill: %d lock records left (a dead job's lock goes stale; prune then removes it)", len(locks))

	// A start brings it back; the earlier snapshot restores and the next
	// one succeeds.
	ts.startEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	if newPID := ts.supervisorPID(t, env.ID); newPID == pid {
		t.Fatalf("the supervisor was not restarted (pid %d)", pid)
	}
	ts.sshRun(t, token, env.ID, "true") // its supervisor has connected
	if rr, err := admin.RestoreSnapshot(ts.ctx, env.ID, first.ID, ""); err != nil || len(rr.Failures) != 0 {
		t.Fatalf("restore of the earlier snapshot: %+v, %v", rr, err)
	}
	sameFiles(t, "earlier snapshot after the kill", want, readFiles(t, dir))
	randomFile(t, filepath.Join(dir, "big.bin"), 8<<20, 2)
	next := ts.snapshotWithin(t, token, env.ID, time.Minute)
	if next.FileCount != 3 {
		t.Errorf("next snapshot %+v, want 3 files", next)
	}
	if verify, err := admin.VerifySnapshots(ts.ctx); err != nil || !verify.OK {
		t.Fatalf("verify after the next snapshot: %+v, %v", verify, err)
	}
}

// TestStopWaitsForLostVolumeRestore: a stop asked for while a lost volume
// is being restored lets the restore finish, then takes its pre-stop
// snapshot of the whole workspace, not of half of it.
func TestStopWaitsForLostVolumeRestore(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "impatient"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.sshRun(t, token, env.ID, "true") // its supervisor has connected
	dir := ts.workspaceDir(env.ID)
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "src/main.go": "package main\n"})
	randomFile(t, filepath.Join(dir, "data.bin"), 32<<20, 3) // so the restore takes a while
	want := readFiles(t, dir)
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ada := ts.client(token)
	list, err := ada.Snapshots(ts.ctx, env.ID)
	if err != nil || len(list) != 1 || list[0].Status != sdk.SnapshotCompleted {
		t.Fatalf("snapshots after the stop: %+v, %v", list, err)
	}
	full := list[0]

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ts.startEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	// At once: the restore has at best just begun.
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	if ev := ts.waitAudit(t, "environment.restore_lost_volume", env.ID, 1)[0]; !ev.Success {
		t.Fatalf("restore interrupted by the stop: %+v", ev.Detail)
	}
	if list, err = ada.Snapshots(ts.ctx, env.ID); err != nil || len(list) != 2 {
		t.Fatalf("snapshots after the second stop: %+v, %v", list, err)
	}
	if pre := list[0]; pre.Trigger != "PRE_SHUTDOWN" || pre.Status != sdk.SnapshotCompleted || pre.FileCount != full.FileCount || pre.SizeBytes != full.SizeBytes {
		t.Fatalf("pre-stop snapshot after the restore %+v, want the whole workspace as in %+v", pre, full)
	}
	sameFiles(t, "workspace after the interrupted start", want, readFiles(t, dir))
}

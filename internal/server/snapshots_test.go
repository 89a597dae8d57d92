package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// takeSnapshot asks for a snapshot and follows it until it ends.
func (ts *testServer) takeSnapshot(t *testing.T, token, envID string) sdk.Snapshot {
	t.Helper()
	created, err := ts.client(token).CreateSnapshot(ts.ctx, envID)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if created.Status != sdk.SnapshotPending || created.Trigger != "MANUAL" {
		t.Fatalf("snapshot answered %+v", created)
	}
	return ts.waitSnapshot(t, token, envID, created.ID)
}

// waitSnapshot follows a snapshot until it is COMPLETED, failing the test
// if it fails. The snapshot runs in the background after the 202; there is
// nothing to wait on but its record, so the record is polled.
func (ts *testServer) waitSnapshot(t *testing.T, token, envID, id string) sdk.Snapshot {
	t.Helper()
	c := ts.client(token)
	var snap sdk.Snapshot
	wait.Succeeds(wait.Context(t, wait.Long), t, "the snapshot to complete", func() error {
		got, err := c.GetSnapshot(ts.ctx, envID, id)
		if err != nil {
			t.Fatalf("get snapshot: %v", err)
		}
		switch got.Status {
		case sdk.SnapshotCompleted:
			snap = *got
			return nil
		case sdk.SnapshotFailed:
			t.Fatalf("snapshot failed: %s", got.Error)
		}
		return fmt.Errorf("still %s", got.Status)
	})
	return snap
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
		} else if d.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + target
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %.40q, want %.40q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

// TestSnapshots: snapshot a running workspace through its supervisor,
// change it, restore it (whole and one path), with the access rules and a
// corrupt chunk.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("bob@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "snap"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)

	// Written through the workspace (SSH) and beside it.
	ts.sshRun(t, token, env.ID, "mkdir -p src/deep && printf 'package main\\n' > src/main.go && ln -s src/main.go link && mkdir -p node_modules/x && echo dep > node_modules/x/i.js")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "src/deep/data.bin": string(big), "notes/todo.txt": "buy milk\n"})
	before := readFiles(t, dir)

	// The first snapshot is asked for on the wire: the answer is a 202 with
	// the PENDING record.
	var created struct{ Snapshot sdk.Snapshot }
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &created); code != http.StatusAccepted {
		t.Fatalf("snapshot: %d", code)
	}
	if created.Snapshot.Status != sdk.SnapshotPending || created.Snapshot.Trigger != "MANUAL" {
		t.Fatalf("snapshot answered %+v", created.Snapshot)
	}
	first := ts.waitSnapshot(t, token, env.ID, created.Snapshot.ID)
	if first.FileCount < 4 || first.SizeBytes < int64(len(big)) || first.ChangedBytes == 0 || first.SnapshotID == "" {
		t.Fatalf("first snapshot %+v", first)
	}
	// Nothing changed: the second snapshot stores nothing new.
	second := ts.takeSnapshot(t, token, env.ID)
	if second.ChangedBytes != 0 {
		t.Errorf("unchanged workspace: second snapshot stored %d bytes", second.ChangedBytes)
	}
	ada, other := ts.client(token), ts.client(otherToken)
	if list, err := ada.Snapshots(ts.ctx, env.ID); err != nil || len(list) != 2 || list[1].ID != first.ID {
		t.Fatalf("list: %+v, %v", list, err)
	}

	// Change, add and delete files, then restore: the workspace is the
	// snapshot again; node_modules (excluded) is left alone.
	ts.sshRun(t, token, env.ID, "rm README.md && echo changed > src/main.go && echo new > extra.txt && rm -r notes && mkdir -p stray/dir")
	rr, err := ada.RestoreSnapshot(ts.ctx, env.ID, first.ID, "")
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(rr.Failures) != 0 || rr.Removed != 2 {
		t.Errorf("restore answered %+v (want 2 removed: extra.txt, stray)", rr)
	}
	sameFiles(t, "after restore", before, readFiles(t, dir))
	if _, err := os.Stat(filepath.Join(dir, "stray")); !os.IsNotExist(err) {
		t.Errorf("stray directory survived the restore: %v", err)
	}

	// One path only.
	ts.sshRun(t, token, env.ID, "echo other > src/main.go && echo keep > README.md")
	if rr, err := ada.RestoreSnapshot(ts.ctx, env.ID, first.ID, "src"); err != nil || len(rr.Failures) != 0 {
		t.Fatalf("restore src: %+v, %v", rr, err)
	}
	if out := ts.sshRun(t, token, env.ID, "cat src/main.go README.md"); out != "package main\nkeep\n" {
		t.Errorf("after restoring src: %q", out)
	}
	if _, err := ada.RestoreSnapshot(ts.ctx, env.ID, first.ID, "../etc"); !isAPIError(err, http.StatusBadRequest, "") {
		t.Errorf("restore ../etc: %v", err)
	}

	// Someone else sees neither the environment's snapshots nor restores
	// them into their own environment; an agent token is refused.
	if _, err := other.Snapshots(ts.ctx, env.ID); !isAPIError(err, http.StatusNotFound, "") {
		t.Errorf("other user lists snapshots: %v", err)
	}
	if _, err := other.CreateSnapshot(ts.ctx, env.ID); !isAPIError(err, http.StatusNotFound, "") {
		t.Errorf("other user takes a snapshot: %v", err)
	}
	otherEnv := ts.create(otherToken, sdk.CreateEnvironmentRequest{Name: "theirs"})
	if _, err := other.RestoreSnapshot(ts.ctx, otherEnv.ID, first.ID, ""); !isAPIError(err, http.StatusNotFound, sdk.CodeNotFound) {
		t.Errorf("restore another's snapshot into one's own environment: %v", err)
	}
	if _, err := ts.client(ts.agentToken(env.ID)).Snapshots(ts.ctx, env.ID); !isAPIError(err, http.StatusForbidden, "") {
		t.Errorf("agent token lists snapshots: %v", err)
	}

	// A corrupt chunk: the restore reports that file and restores the rest.
	st, err := snapshot.OpenDirStore(filepath.Join(ts.dataDir, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := snapshot.Open(ts.ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := repo.ReadDir(ts.ctx, first.SnapshotID, "src/deep")
	if err != nil || len(nodes) != 1 || len(nodes[0].Content) == 0 {
		t.Fatalf("src/deep in the repository: %+v, %v", nodes, err)
	}
	chunk := nodes[0].Content[0].String()
	blob := filepath.Join(ts.dataDir, "backups", "data", chunk[:2], chunk)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ts.sshRun(t, token, env.ID, "rm -r src README.md")
	rr, err = ada.RestoreSnapshot(ts.ctx, env.ID, first.ID, "")
	if err != nil {
		t.Fatalf("restore with a corrupt chunk: %v", err)
	}
	if len(rr.Failures) != 1 || rr.Failures[0].Path != "src/deep/data.bin" {
		t.Fatalf("failures = %+v, want src/deep/data.bin", rr.Failures)
	}
	got := readFiles(t, dir)
	if _, ok := got["src/deep/data.bin"]; ok {
		t.Error("the corrupt file was restored")
	}
	delete(before, "src/deep/data.bin")
	sameFiles(t, "after restore with a corrupt chunk", before, got)

	// One snapshot at a time per environment.
	envRec, err := ts.srv.Store.GetEnvironment(ts.ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := ts.srv.Store.CreateBackup(ts.ctx, store.Backup{EnvironmentID: env.ID, UserID: envRec.UserID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ada.CreateSnapshot(ts.ctx, env.ID); !isAPIError(err, http.StatusConflict, "") || !strings.Contains(err.(*sdk.Error).Details, busy.ID) {
		t.Errorf("snapshot while one is pending: %v", err)
	}
	if err := ts.srv.Store.FinishBackup(ts.ctx, busy.ID, store.BackupResult{Error: "test"}); err != nil {
		t.Fatal(err)
	}

	// A stopped environment cannot be restored into.
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	if _, err := ada.RestoreSnapshot(ts.ctx, env.ID, first.ID, ""); !isAPIError(err, http.StatusConflict, "") {
		t.Errorf("restore into a stopped environment: %v", err)
	}
	if _, err := ada.CreateSnapshot(ts.ctx, env.ID); !isAPIError(err, http.StatusConflict, "") {
		t.Errorf("snapshot of a stopped environment: %v", err)
	}
}

// TestSnapshotFork: a new environment from a snapshot has the snapshot's
// files; nobody forks someone else's snapshot.
func TestSnapshotFork(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("bob@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "origin"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.sshRun(t, token, env.ID, "mkdir -p app/empty && echo state > app/state.txt && ln -s app/state.txt current")
	want := readFiles(t, ts.workspaceDir(env.ID))
	snap := ts.takeSnapshot(t, token, env.ID)

	if _, err := ts.client(otherToken).CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "stolen", FromSnapshot: snap.ID}); !isAPIError(err, http.StatusBadRequest, sdk.CodeValidation) {
		t.Fatalf("fork of another's snapshot: %v", err)
	}
	if _, err := ts.client(token).CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "nope", FromSnapshot: "snap_nope"}); !isAPIError(err, http.StatusBadRequest, "") {
		t.Fatalf("fork of an unknown snapshot: %v", err)
	}

	fork := ts.create(token, sdk.CreateEnvironmentRequest{Name: "fork", FromSnapshot: snap.ID})
	if fork.RestoringSnapshot != snap.ID {
		t.Fatalf("the fork's create answered restoring_snapshot %q, want %s", fork.RestoringSnapshot, snap.ID)
	}
	ts.waitStatus(token, fork.ID, sdk.StatusRunning)
	// The restore follows RUNNING; the fork says so until it ends, and then
	// says how it went.
	done, err := ts.client(token).Watch(ts.ctx, fork.ID, func(e sdk.Environment) bool { return e.RestoringSnapshot == "" })
	if err != nil || !strings.HasPrefix(done.StatusReason, "Its files were restored from snapshot "+snap.ID) {
		t.Fatalf("the fork after its restore: %+v, %v", done, err)
	}
	// Its end is recorded in the audit log.
	wait.Eventually(wait.Context(t, wait.Long), t, "a snapshot.fork audit event", func() bool {
		events, _, err := ts.srv.Store.ListAuditEvents(ts.ctx, store.AuditFilter{Action: "snapshot.fork", ObjectID: fork.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 1 && !events[0].Success {
			t.Fatalf("fork restore failed: %+v", events[0].Detail)
		}
		return len(events) == 1
	})
	sameFiles(t, "fork", want, readFiles(t, ts.workspaceDir(fork.ID)))
	if out := ts.sshRun(t, token, fork.ID, "cat current && test -d app/empty && echo dir"); out != "state\ndir\n" {
		t.Fatalf("in the fork: %q", out)
	}
}

// TestScheduledSnapshots: a used workspace gets SCHEDULED snapshots, and
// pruning keeps only what retention says (here: the last one), records
// included.
func TestScheduledSnapshots(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.Snapshots = backup.Schedule{Interval: 100 * time.Millisecond, PruneInterval: time.Nanosecond,
			Retention: snapshot.Retention{KeepLast: 1}}
	})
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "busy"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.sshRun(t, token, env.ID, "echo one > f.txt")

	// Starting counts as use: a first scheduled snapshot comes. Then
	// activity brings another one, and pruning leaves one record.
	var seen []string
	ada := ts.client(token)
	waitFor := func(what string, cond func([]sdk.Snapshot) bool) []sdk.Snapshot {
		t.Helper()
		var snaps []sdk.Snapshot
		wait.Succeeds(wait.Context(t, wait.Long), t, what, func() error {
			list, err := ada.Snapshots(ts.ctx, env.ID)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if cond(list) {
				snaps = list
				return nil
			}
			return fmt.Errorf("still %+v", list)
		})
		return snaps
	}
	first := waitFor("first scheduled snapshot", func(l []sdk.Snapshot) bool {
		return len(l) > 0 && l[0].Status == sdk.SnapshotCompleted
	})[0]
	if first.Trigger != "SCHEDULED" {
		t.Fatalf("first snapshot %+v", first)
	}
	seen = append(seen, first.ID)
	ts.sshRun(t, token, env.ID, "echo two > f.txt")
	if err := ada.ReportActivity(ts.ctx, env.ID); err != nil {
		t.Fatalf("activity: %v", err)
	}
	last := waitFor("a newer snapshot, the first one pruned", func(l []sdk.Snapshot) bool {
		return len(l) == 1 && l[0].ID != first.ID && l[0].Status == sdk.SnapshotCompleted
	})[0]
	if last.Trigger != "SCHEDULED" {
		t.Fatalf("second snapshot %+v", last)
	}
	// The pruned snapshot's record is gone from the repository too.
	st, err := snapshot.OpenDirStore(filepath.Join(ts.dataDir, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := st.ListRecords(ts.ctx, snapshot.KindSnapshot)
	if err != nil || len(names) != 1 || names[0] != last.SnapshotID {
		t.Fatalf("repository snapshots %v, %v; want [%s] (seen %v)", names, err, last.SnapshotID, seen)
	}
	if rr, err := ada.RestoreSnapshot(ts.ctx, env.ID, last.ID, ""); err != nil || len(rr.Failures) != 0 {
		t.Fatalf("restore after pruning: %+v, %v", rr, err)
	}
	if out := ts.sshRun(t, token, env.ID, "cat f.txt"); out != "two\n" {
		t.Fatalf("restored f.txt = %q", out)
	}
}

// TestPreStopSnapshot: the idle auto-stop snapshots the workspace first,
// and the stop waits for it: a file written just before is in it.
func TestPreStopSnapshot(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "idle", AutoStopMinutes: minutes(1)})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.sshRun(t, token, env.ID, "echo written-just-before > late.txt")

	// Nobody touches it for longer than its auto-stop: the reaper stops it.
	ts.clock.Advance(2 * time.Minute)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ada := ts.client(token)
	list, err := ada.Snapshots(ts.ctx, env.ID)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 1 || list[0].Trigger != "PRE_SHUTDOWN" || list[0].Status != sdk.SnapshotCompleted {
		t.Fatalf("snapshots after the idle stop: %+v, want one COMPLETED PRE_SHUTDOWN", list)
	}
	pre := list[0]

	// Started again, the file lost, the pre-stop snapshot brings it back.
	ts.startEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.sshRun(t, token, env.ID, "rm late.txt")
	if rr, err := ada.RestoreSnapshot(ts.ctx, env.ID, pre.ID, ""); err != nil || len(rr.Failures) != 0 {
		t.Fatalf("restore: %+v, %v", rr, err)
	}
	if out := ts.sshRun(t, token, env.ID, "cat late.txt"); out != "written-just-before\n" {
		t.Fatalf("late.txt after restoring the pre-stop snapshot = %q", out)
	}
}

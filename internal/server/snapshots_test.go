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
)

type snapshotJSON struct {
	ID           string `json:"id"`
	Trigger      string `json:"trigger"`
	Status       string `json:"status"`
	SnapshotID   string `json:"snapshot_id"`
	SizeBytes    int64  `json:"size_bytes"`
	ChangedBytes int64  `json:"changed_bytes"`
	FileCount    int64  `json:"file_count"`
	Error        string `json:"error"`
}

type restoreJSON struct {
	Files    int64 `json:"files"`
	Removed  int64 `json:"removed"`
	Failures []struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"failures"`
}

// takeSnapshot asks for a snapshot and follows it until it ends. The
// snapshot runs in the background after the 202; there is nothing to wait
// on but its record, so the record is polled.
func (ts *testServer) takeSnapshot(t *testing.T, token, envID string) snapshotJSON {
	t.Helper()
	var created struct{ Snapshot snapshotJSON }
	if code := ts.call("POST", "/api/v1/environments/"+envID+"/snapshots", token, nil, &created); code != http.StatusAccepted {
		t.Fatalf("snapshot: %d", code)
	}
	if created.Snapshot.Status != "PENDING" || created.Snapshot.Trigger != "MANUAL" {
		t.Fatalf("snapshot answered %+v", created.Snapshot)
	}
	var snap snapshotJSON
	wait.Succeeds(wait.Context(t, wait.Long), t, "the snapshot to complete", func() error {
		var got struct{ Snapshot snapshotJSON }
		if code := ts.call("GET", "/api/v1/environments/"+envID+"/snapshots/"+created.Snapshot.ID, token, nil, &got); code != http.StatusOK {
			t.Fatalf("get snapshot: %d", code)
		}
		switch got.Snapshot.Status {
		case "COMPLETED":
			snap = got.Snapshot
			return nil
		case "FAILED":
			t.Fatalf("snapshot failed: %s", got.Snapshot.Error)
		}
		return fmt.Errorf("still %s", got.Snapshot.Status)
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
	env := ts.create(token, map[string]any{"name": "snap"})
	ts.waitStatus(token, env.ID, "RUNNING")
	dir := ts.workspaceDir(env.ID)

	// Written through the workspace (SSH) and beside it.
	ts.sshRun(t, token, env.ID, "mkdir -p src/deep && printf 'package main\\n' > src/main.go && ln -s src/main.go link && mkdir -p node_modules/x && echo dep > node_modules/x/i.js")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "src/deep/data.bin": string(big), "notes/todo.txt": "buy milk\n"})
	before := readFiles(t, dir)

	first := ts.takeSnapshot(t, token, env.ID)
	if first.FileCount < 4 || first.SizeBytes < int64(len(big)) || first.ChangedBytes == 0 || first.SnapshotID == "" {
		t.Fatalf("first snapshot %+v", first)
	}
	// Nothing changed: the second snapshot stores nothing new.
	second := ts.takeSnapshot(t, token, env.ID)
	if second.ChangedBytes != 0 {
		t.Errorf("unchanged workspace: second snapshot stored %d bytes", second.ChangedBytes)
	}
	var list struct{ Snapshots []snapshotJSON }
	if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &list); code != http.StatusOK || len(list.Snapshots) != 2 || list.Snapshots[1].ID != first.ID {
		t.Fatalf("list: %d %+v", code, list.Snapshots)
	}

	// Change, add and delete files, then restore: the workspace is the
	// snapshot again; node_modules (excluded) is left alone.
	ts.sshRun(t, token, env.ID, "rm README.md && echo changed > src/main.go && echo new > extra.txt && rm -r notes && mkdir -p stray/dir")
	var rr restoreJSON
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+first.ID+"/restore", token, nil, &rr); code != http.StatusOK {
		t.Fatalf("restore: %d", code)
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
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+first.ID+"/restore", token, map[string]string{"path": "src"}, &rr); code != http.StatusOK || len(rr.Failures) != 0 {
		t.Fatalf("restore src: %d %+v", code, rr)
	}
	if out := ts.sshRun(t, token, env.ID, "cat src/main.go README.md"); out != "package main\nkeep\n" {
		t.Errorf("after restoring src: %q", out)
	}
	var e errJSON
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+first.ID+"/restore", token, map[string]string{"path": "../etc"}, &e); code != http.StatusBadRequest {
		t.Errorf("restore ../etc: %d %+v", code, e)
	}

	// Someone else sees neither the environment's snapshots nor restores
	// them into their own environment; an agent token is refused.
	if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/snapshots", otherToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("other user lists snapshots: %d", code)
	}
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots", otherToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("other user takes a snapshot: %d", code)
	}
	otherEnv := ts.create(otherToken, map[string]any{"name": "theirs"})
	if code := ts.call("POST", "/api/v1/environments/"+otherEnv.ID+"/snapshots/"+first.ID+"/restore", otherToken, nil, &e); code != http.StatusNotFound || e.Code != "NOT_FOUND" {
		t.Errorf("restore another's snapshot into one's own environment: %d %+v", code, e)
	}
	if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/snapshots", ts.agentToken(env.ID), nil, nil); code != http.StatusForbidden {
		t.Errorf("agent token lists snapshots: %d", code)
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
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+first.ID+"/restore", token, nil, &rr); code != http.StatusOK {
		t.Fatalf("restore with a corrupt chunk: %d", code)
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
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &e); code != http.StatusConflict || !strings.Contains(e.Details, busy.ID) {
		t.Errorf("snapshot while one is pending: %d %+v", code, e)
	}
	if err := ts.srv.Store.FinishBackup(ts.ctx, busy.ID, store.BackupResult{Error: "test"}); err != nil {
		t.Fatal(err)
	}

	// A stopped environment cannot be restored into.
	ts.call("POST", "/api/v1/environments/"+env.ID+"/stop", token, nil, nil)
	ts.waitStatus(token, env.ID, "STOPPED")
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+first.ID+"/restore", token, nil, &e); code != http.StatusConflict {
		t.Errorf("restore into a stopped environment: %d %+v", code, e)
	}
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &e); code != http.StatusConflict {
		t.Errorf("snapshot of a stopped environment: %d %+v", code, e)
	}
}

// TestSnapshotFork: a new environment from a snapshot has the snapshot's
// files; nobody forks someone else's snapshot.
func TestSnapshotFork(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("bob@example.com")
	env := ts.create(token, map[string]any{"name": "origin"})
	ts.waitStatus(token, env.ID, "RUNNING")
	ts.sshRun(t, token, env.ID, "mkdir -p app/empty && echo state > app/state.txt && ln -s app/state.txt current")
	want := readFiles(t, ts.workspaceDir(env.ID))
	snap := ts.takeSnapshot(t, token, env.ID)

	var e errJSON
	if code := ts.call("POST", "/api/v1/environments", otherToken, map[string]any{"name": "stolen", "from_snapshot": snap.ID}, &e); code != http.StatusBadRequest || e.Code != "VALIDATION_ERROR" {
		t.Fatalf("fork of another's snapshot: %d %+v", code, e)
	}
	if code := ts.call("POST", "/api/v1/environments", token, map[string]any{"name": "nope", "from_snapshot": "snap_nope"}, &e); code != http.StatusBadRequest {
		t.Fatalf("fork of an unknown snapshot: %d %+v", code, e)
	}

	fork := ts.create(token, map[string]any{"name": "fork", "from_snapshot": snap.ID})
	ts.waitStatus(token, fork.ID, "RUNNING")
	// The restore follows RUNNING; its end is recorded in the audit log.
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
	env := ts.create(token, map[string]any{"name": "busy"})
	ts.waitStatus(token, env.ID, "RUNNING")
	ts.sshRun(t, token, env.ID, "echo one > f.txt")

	// Starting counts as use: a first scheduled snapshot comes. Then
	// activity brings another one, and pruning leaves one record.
	var seen []string
	waitFor := func(what string, cond func([]snapshotJSON) bool) []snapshotJSON {
		t.Helper()
		var snaps []snapshotJSON
		wait.Succeeds(wait.Context(t, wait.Long), t, what, func() error {
			var list struct{ Snapshots []snapshotJSON }
			if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &list); code != http.StatusOK {
				t.Fatalf("list: %d", code)
			}
			if cond(list.Snapshots) {
				snaps = list.Snapshots
				return nil
			}
			return fmt.Errorf("still %+v", list.Snapshots)
		})
		return snaps
	}
	first := waitFor("first scheduled snapshot", func(l []snapshotJSON) bool {
		return len(l) > 0 && l[0].Status == "COMPLETED"
	})[0]
	if first.Trigger != "SCHEDULED" {
		t.Fatalf("first snapshot %+v", first)
	}
	seen = append(seen, first.ID)
	ts.sshRun(t, token, env.ID, "echo two > f.txt")
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", token, nil, nil); code != http.StatusOK {
		t.Fatalf("activity: %d", code)
	}
	last := waitFor("a newer snapshot, the first one pruned", func(l []snapshotJSON) bool {
		return len(l) == 1 && l[0].ID != first.ID && l[0].Status == "COMPLETED"
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
	var rr restoreJSON
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+last.ID+"/restore", token, nil, &rr); code != http.StatusOK || len(rr.Failures) != 0 {
		t.Fatalf("restore after pruning: %d %+v", code, rr)
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
	env := ts.create(token, map[string]any{"name": "idle", "auto_stop_minutes": 1})
	ts.waitStatus(token, env.ID, "RUNNING")
	ts.sshRun(t, token, env.ID, "echo written-just-before > late.txt")

	// Nobody touches it for longer than its auto-stop: the reaper stops it.
	ts.clock.Advance(2 * time.Minute)
	ts.waitStatus(token, env.ID, "STOPPED")
	var list struct{ Snapshots []snapshotJSON }
	if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/snapshots", token, nil, &list); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(list.Snapshots) != 1 || list.Snapshots[0].Trigger != "PRE_SHUTDOWN" || list.Snapshots[0].Status != "COMPLETED" {
		t.Fatalf("snapshots after the idle stop: %+v, want one COMPLETED PRE_SHUTDOWN", list.Snapshots)
	}
	pre := list.Snapshots[0]

	// Started again, the file lost, the pre-stop snapshot brings it back.
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/start", token, nil, nil); code != http.StatusOK {
		t.Fatalf("start: %d", code)
	}
	ts.waitStatus(token, env.ID, "RUNNING")
	ts.sshRun(t, token, env.ID, "rm late.txt")
	var rr restoreJSON
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/snapshots/"+pre.ID+"/restore", token, nil, &rr); code != http.StatusOK || len(rr.Failures) != 0 {
		t.Fatalf("restore: %d %+v", code, rr)
	}
	if out := ts.sshRun(t, token, env.ID, "cat late.txt"); out != "written-just-before\n" {
		t.Fatalf("late.txt after restoring the pre-stop snapshot = %q", out)
	}
}

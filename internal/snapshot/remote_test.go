package snapshot

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

// runJob runs job with the server end on st and the supervisor end doing
// work on a Repo opened over the stream, the way the server and a
// supervisor do through the tunnel.
func runJob(t *testing.T, st Store, job Job, access Access, work func(ctx context.Context, job Job, repo *Repo) JobResult) (JobResult, error) {
	t.Helper()
	ctx := wait.Context(t, wait.VeryLong)
	srv, cli := net.Pipe()
	done := make(chan error, 1)
	go func() {
		j, rs, err := AcceptJob(cli)
		if err != nil {
			done <- err
			return
		}
		defer rs.Close()
		repo, err := Open(ctx, rs)
		var res JobResult
		if err != nil {
			res.Error = err.Error()
		} else {
			res = work(ctx, j, repo)
		}
		done <- rs.Finish(res)
	}()
	res, err := ServeJob(ctx, srv, st, job, access)
	if cerr := <-done; cerr != nil && err == nil {
		t.Fatalf("supervisor end: %v", cerr)
	}
	return res, err
}

func snapshotWork(dir string) func(ctx context.Context, job Job, repo *Repo) JobResult {
	return func(ctx context.Context, job Job, repo *Repo) JobResult {
		snap, err := repo.Snapshot(ctx, dir, Options{Source: job.Source, Parent: job.Parent, NoParent: job.Parent == ""})
		if err != nil {
			return JobResult{Error: err.Error()}
		}
		return JobResult{Snapshot: &snap}
	}
}

func restoreWork(dir string) func(ctx context.Context, job Job, repo *Repo) JobResult {
	return func(ctx context.Context, job Job, repo *Repo) JobResult {
		var res JobResult
		if job.Clean {
			n, err := repo.RemoveUnlisted(ctx, job.Snapshot, dir, job.Path)
			if err != nil {
				return JobResult{Error: err.Error()}
			}
			res.Removed = n
		}
		st, err := repo.Restore(ctx, job.Snapshot, dir, RestoreOptions{Path: job.Path})
		res.Restore = &st
		res.Failures = RestoreFailures(err)
		if err != nil && len(res.Failures) == 0 {
			res.Error = err.Error()
		}
		return res
	}
}

func TestRemoteSnapshotRestoreClean(t *testing.T) {
	t.Parallel()
	_, st := newRepo(t)
	src := t.TempDir()
	files := writeTree(t, src, treeSpec{files: 60, largeSize: 3 << 20}, 7)
	want := readTree(t, src)

	res, err := runJob(t, st, Job{Op: JobSnapshot, Source: "env1"}, Access{AllowCreate: true}, snapshotWork(src))
	if err != nil || res.Error != "" || res.Snapshot == nil {
		t.Fatalf("snapshot job: %+v, %v", res, err)
	}
	id := res.Snapshot.ID
	if res.Snapshot.Stats.Files == 0 || res.Snapshot.Stats.NewBytes == 0 {
		t.Fatalf("stats %+v", res.Snapshot.Stats)
	}
	// The same tree again, incremental: nothing new is stored.
	res2, err := runJob(t, st, Job{Op: JobSnapshot, Source: "env1", Parent: id}, Access{AllowCreate: true, ReadSnapshots: []string{id}}, snapshotWork(src))
	if err != nil || res2.Error != "" {
		t.Fatalf("second snapshot: %+v, %v", res2, err)
	}
	if res2.Snapshot.Stats.FilesRead != 0 || res2.Snapshot.Stats.NewChunks != 0 {
		t.Fatalf("incremental snapshot read or stored data: %+v", res2.Snapshot.Stats)
	}

	// Change the workspace: delete a file, add one, replace a file by a
	// directory.
	if err := os.Remove(filepath.Join(src, files[0])); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "extra.txt"), []byte("new"), 0o644)
	if err := os.Remove(filepath.Join(src, files[1])); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(src, files[1]), 0o755)
	writeFile(t, filepath.Join(src, files[1], "inner"), []byte("x"), 0o644)

	rr, err := runJob(t, st, Job{Op: JobRestore, Snapshot: id, Clean: true}, Access{ReadSnapshots: []string{id}}, restoreWork(src))
	if err != nil || rr.Error != "" || len(rr.Failures) != 0 {
		t.Fatalf("restore job: %+v, %v", rr, err)
	}
	if rr.Removed != 2 {
		t.Errorf("removed %d entries, want 2", rr.Removed)
	}
	sameTree(t, want, readTree(t, src))
}

func TestRemoteAccess(t *testing.T) {
	t.Parallel()
	r, st := newRepo(t)
	ctx := wait.Context(t, wait.VeryLong)
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "secret"), []byte("theirs"), 0o600)
	theirs, err := r.Snapshot(ctx, other, Options{Source: "env2"})
	if err != nil {
		t.Fatal(err)
	}

	var checks []string
	res, err := runJob(t, st, Job{Op: JobRestore, Snapshot: theirs.ID}, Access{}, func(ctx context.Context, job Job, repo *Repo) JobResult {
		rs := repo.Store()
		if _, err := repo.LoadSnapshot(ctx, theirs.ID); !errors.Is(err, ErrNotFound) {
			checks = append(checks, "read another's snapshot: "+errString(err))
		}
		if names, err := rs.ListRecords(ctx, KindSnapshot); err != nil || len(names) != 0 {
			checks = append(checks, "listed snapshots")
		}
		if err := rs.PutRecord(ctx, KindConfig, "config", []byte("{}")); err == nil {
			checks = append(checks, "replaced the config")
		}
		if err := rs.PutRecord(ctx, KindSnapshot, theirs.ID, []byte(`{"id":"`+theirs.ID+`"}`)); err == nil {
			checks = append(checks, "wrote a snapshot record without AllowCreate")
		}
		if err := rs.DeleteRecord(ctx, KindSnapshot, theirs.ID); err == nil {
			checks = append(checks, "deleted a snapshot record")
		}
		if err := rs.Put(ctx, Hash([]byte("a")), encodeBlob([]byte("b"))); err == nil || !strings.Contains(err.Error(), "corrupt") {
			checks = append(checks, "stored a blob under another hash: "+errString(err))
		}
		if _, err := rs.Delete(ctx, theirs.Tree, time.Time{}); err == nil {
			checks = append(checks, "deleted a blob")
		}
		return JobResult{}
	})
	if err != nil || res.Error != "" {
		t.Fatalf("job: %+v, %v", res, err)
	}
	for _, c := range checks {
		t.Error(c)
	}
	if _, err := r.LoadSnapshot(ctx, theirs.ID); err != nil {
		t.Fatalf("their snapshot after the job: %v", err)
	}

	// A snapshot job creates one record, of its own source.
	_, err = runJob(t, st, Job{Op: JobSnapshot, Source: "env1"}, Access{AllowCreate: true}, func(ctx context.Context, job Job, repo *Repo) JobResult {
		rs := repo.Store()
		forged := `{"id":"20260101T000000.000000000Z-aaaaaaaa","source":"env2"}`
		if err := rs.PutRecord(ctx, KindSnapshot, "20260101T000000.000000000Z-aaaaaaaa", []byte(forged)); err == nil {
			t.Error("wrote a snapshot record of another source")
		}
		own := `{"id":"20260101T000000.000000000Z-bbbbbbbb","source":"env1"}`
		if err := rs.PutRecord(ctx, KindSnapshot, "20260101T000000.000000000Z-bbbbbbbb", []byte(own)); err != nil {
			t.Errorf("own snapshot record: %v", err)
		}
		second := `{"id":"20260101T000000.000000000Z-cccccccc","source":"env1"}`
		if err := rs.PutRecord(ctx, KindSnapshot, "20260101T000000.000000000Z-cccccccc", []byte(second)); err == nil {
			t.Error("wrote a second snapshot record in one job")
		}
		return JobResult{Error: "done"}
	})
	if err != nil {
		t.Fatal(err)
	}

	// A snapshot job may create a record but not claim one it did not write.
	_, err = runJob(t, st, Job{Op: JobSnapshot}, Access{AllowCreate: true}, func(ctx context.Context, job Job, repo *Repo) JobResult {
		return JobResult{Snapshot: &theirs}
	})
	if err == nil {
		t.Fatal("a result naming someone else's snapshot was accepted")
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// A supervisor killed in the middle of a job never removes its lock; the
// server removes it when the job ends, so pruning is not held back.
func TestRemoteJobDeathRemovesItsLocks(t *testing.T) {
	t.Parallel()
	_, st := newRepo(t)
	ctx := wait.Context(t, wait.VeryLong)
	srv, cli := net.Pipe()
	locked := make(chan error, 1)
	go func() {
		_, rs, err := AcceptJob(cli)
		if err == nil {
			err = rs.PutRecord(ctx, KindLock, "job-lock", []byte(`{"source":"env1"}`))
		}
		locked <- err
		cli.Close() // dies without reporting a result
	}()
	_, err := ServeJob(ctx, srv, st, Job{Op: JobSnapshot, Source: "env1"}, Access{AllowCreate: true})
	if err == nil || !strings.Contains(err.Error(), "stopped answering") {
		t.Fatalf("ServeJob = %v, want the workspace to have stopped answering", err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("the job could not take its lock: %v", err)
	}
	names, err := st.ListRecords(ctx, KindLock)
	if err != nil || len(names) != 0 {
		t.Fatalf("locks left after the job died: %v %v", names, err)
	}
}

package snapshot

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"dev8.dev/dev8/internal/testutil/wait"
)

const crashEnv = "DEV8_SNAPSHOT_CRASH_CHILD"

// blockingStore announces "ready" on stdout after n puts and then blocks
// every further Put, so the parent can kill -9 the process mid-snapshot.
type blockingStore struct {
	Store
	n    int64
	puts atomic.Int64
	once sync.Once
}

func (b *blockingStore) Put(ctx context.Context, id ID, data []byte) error {
	if b.puts.Add(1) > b.n {
		b.once.Do(func() { fmt.Println("ready") })
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Store.Put(ctx, id, data)
}

// TestCrashChild is the process that TestKillDuringSnapshot kills; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("only run as the child of TestKillDuringSnapshot")
	}
	repoDir, src, _ := strings.Cut(spec, "|")
	st, err := OpenDirStore(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := Open(context.Background(), &blockingStore{Store: st, n: 30})
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Snapshot(context.Background(), src, Options{Source: "env"})
	t.Fatalf("the snapshot was supposed to block until killed: %v", err)
}

// TestKillDuringSnapshot kills (SIGKILL) a process in the middle of a
// snapshot: earlier snapshots still verify and restore, and the next
// snapshot succeeds.
func TestKillDuringSnapshot(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	small := writeTree(t, src, treeSpec{files: 200, largeSize: 2 << 20}, 8)
	want1 := readTree(t, src)
	s1, err := repo.Snapshot(ctx, src, Options{Source: "env"})
	if err != nil {
		t.Fatal(err)
	}
	for i, rel := range small[:120] {
		writeFile(t, filepath.Join(src, rel), fmt.Appendf(nil, "after the first snapshot %d", i), 0o644)
	}
	want2 := readTree(t, src)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashEnv+"="+st.Root()+"|"+src)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		cmd.Wait()
		t.Fatal("the child exited before the middle of its snapshot")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The dead process left its lock and some blobs, but no snapshot.
	locks, err := st.ListRecords(ctx, KindLock)
	if err != nil || len(locks) != 1 {
		t.Fatalf("locks after the kill: %v %v", locks, err)
	}
	snaps, err := repo.Snapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots after the kill: %d %v", len(snaps), err)
	}
	if rep, err := repo.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("verify after the kill: %+v %v", rep, err)
	}
	d1 := filepath.Join(t.TempDir(), "d1")
	if _, err := repo.Restore(ctx, s1.ID, d1, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want1, readTree(t, d1))

	s2, err := repo.Snapshot(ctx, src, Options{Source: "env"})
	if err != nil {
		t.Fatal(err)
	}
	d2 := filepath.Join(t.TempDir(), "d2")
	if _, err := repo.Restore(ctx, s2.ID, d2, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want2, readTree(t, d2))
	// The dead lock is still fresh, so prune keeps everything written
	// since it was taken.
	rep, err := repo.Prune(ctx, PruneOptions{Retention: DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	if rep.StaleLocks != 0 || rep.BlobsDeleted != 0 {
		t.Errorf("prune with a fresh lock: %+v", rep)
	}
	if v, err := repo.Verify(ctx); err != nil || !v.OK() || v.Snapshots != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

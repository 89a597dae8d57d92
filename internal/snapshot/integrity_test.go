package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

// chunkOf returns the chunks of the file at rel in a snapshot.
func chunkOf(t *testing.T, repo *Repo, snap Snapshot, rel string) []ID {
	t.Helper()
	n, err := repo.lookup(wait.Context(t, wait.VeryLong), snap.Tree, rel)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Content) == 0 {
		t.Fatalf("%s has no chunks", rel)
	}
	return n.Content
}

func TestCorruptAndMissingChunks(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, treeSpec{files: 200}, 3)
	writeFile(t, filepath.Join(src, "corrupt.bin"), []byte(strings.Repeat("this file will be corrupted\n", 1000)), 0o644)
	writeFile(t, filepath.Join(src, "sub", "missing.txt"), []byte("this file will lose its chunk\n"), 0o644)
	s1, err := repo.Snapshot(ctx, src, Options{Source: "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := readTree(t, src)
	// A second snapshot with a different root shares the chunks.
	writeFile(t, filepath.Join(src, "extra"), []byte("extra"), 0o644)
	s2, err := repo.Snapshot(ctx, src, Options{Source: "a"})
	if err != nil {
		t.Fatal(err)
	}

	corruptID := chunkOf(t, repo, s1, "corrupt.bin")[0]
	missingID := chunkOf(t, repo, s1, "sub/missing.txt")[0]
	p := st.blobPath(corruptID)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(st.blobPath(missingID)); err != nil {
		t.Fatal(err)
	}

	rep, err := repo.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) != 2 {
		t.Fatalf("verify found %d problems, want 2: %+v", len(rep.Problems), rep.Problems)
	}
	both := []string{s1.ID, s2.ID}
	slices.Sort(both)
	for _, p := range rep.Problems {
		slices.Sort(p.Snapshots)
		switch p.ID {
		case corruptID:
			if p.Missing || p.Kind != "chunk" || !slices.Equal(p.Paths, []string{"corrupt.bin"}) || !strings.Contains(p.Err, "corrupt") {
				t.Errorf("corrupt chunk reported as %+v", p)
			}
		case missingID:
			if !p.Missing || p.Kind != "chunk" || !slices.Equal(p.Paths, []string{"sub/missing.txt"}) {
				t.Errorf("missing chunk reported as %+v", p)
			}
		default:
			t.Errorf("unexpected problem %+v", p)
		}
		if !slices.Equal(p.Snapshots, both) {
			t.Errorf("problem %s affects %v, want %v", p.ID.Short(), p.Snapshots, both)
		}
	}

	// Restore refuses the two files, names them, and restores the rest.
	dst := filepath.Join(t.TempDir(), "dst")
	stats, err := repo.Restore(ctx, s1.ID, dst, RestoreOptions{})
	if err == nil {
		t.Fatal("restore of a damaged snapshot succeeded")
	}
	t.Logf("restore error:\n%v", err)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrNotFound) {
		t.Errorf("error does not wrap ErrCorrupt and ErrNotFound: %v", err)
	}
	var failed []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var re *RestoreError
		if !errors.As(e, &re) {
			t.Fatalf("not a RestoreError: %v", e)
		}
		failed = append(failed, re.Path)
	}
	slices.Sort(failed)
	if !slices.Equal(failed, []string{"corrupt.bin", "sub/missing.txt"}) || stats.Failed != 2 {
		t.Errorf("failed = %v (%d), want corrupt.bin and sub/missing.txt", failed, stats.Failed)
	}
	if !strings.Contains(err.Error(), "restore corrupt.bin: chunk 1 of 1: blob "+corruptID.Short()) {
		t.Errorf("error does not name the file and chunk: %v", err)
	}
	delete(want, "corrupt.bin")
	delete(want, "sub/missing.txt")
	got := readTree(t, dst)
	// The failed files' parents have their mtimes; the failed files are
	// absent, not truncated; no temporary file is left.
	sameTree(t, want, got)
}

// failingStore fails every Put after the first n, or cancels a context.
type failingStore struct {
	Store
	n      int64
	puts   atomic.Int64
	cancel context.CancelFunc
}

var errInjected = errors.New("injected store failure")

func (f *failingStore) Put(ctx context.Context, id ID, data []byte) error {
	if f.puts.Add(1) > f.n {
		if f.cancel != nil {
			f.cancel()
			return ctx.Err()
		}
		return errInjected
	}
	return f.Store.Put(ctx, id, data)
}

func TestInterruptedSnapshot(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"store fails", "context cancelled"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, wait.VeryLong)
			repo, st := newRepo(t)
			src := filepath.Join(t.TempDir(), "src")
			small := writeTree(t, src, treeSpec{files: 300, largeSize: 3 << 20}, 4)
			want1 := readTree(t, src)
			s1, err := repo.Snapshot(ctx, src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i, rel := range small[:100] {
				writeFile(t, filepath.Join(src, rel), []byte(fmt.Sprintf("version 2 of %d\n", i)), 0o644)
			}
			want2 := readTree(t, src)

			fs := &failingStore{Store: st, n: 40}
			ctx2 := ctx
			if mode == "context cancelled" {
				var cancel context.CancelFunc
				ctx2, cancel = context.WithCancel(ctx)
				defer cancel()
				fs.cancel = cancel
			}
			broken := &Repo{store: fs, cfg: repo.cfg, lockRefresh: repo.lockRefresh, lockStale: repo.lockStale}
			_, err = broken.Snapshot(ctx2, src, Options{})
			if err == nil {
				t.Fatal("interrupted snapshot succeeded")
			}
			if mode == "store fails" && !errors.Is(err, errInjected) {
				t.Errorf("error %v does not wrap the store's", err)
			}
			if mode == "context cancelled" && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
			if fs.puts.Load() <= 40 {
				t.Fatalf("only %d puts: the failure was not mid-snapshot", fs.puts.Load())
			}
			snaps, err := repo.Snapshots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 1 || snaps[0].ID != s1.ID {
				t.Fatalf("after the interrupted snapshot: %d snapshots, want only the first", len(snaps))
			}
			locks, err := st.ListRecords(ctx, KindLock)
			if err != nil || len(locks) != 0 {
				t.Errorf("locks left: %v %v", locks, err)
			}

			rep, err := repo.Verify(ctx)
			if err != nil || !rep.OK() {
				t.Fatalf("verify after the interruption: %+v %v", rep, err)
			}
			d1 := filepath.Join(t.TempDir(), "d1")
			if _, err := repo.Restore(ctx, s1.ID, d1, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, want1, readTree(t, d1))

			// The next snapshot succeeds, reusing what was stored.
			s2, err := repo.Snapshot(ctx, src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d2 := filepath.Join(t.TempDir(), "d2")
			if _, err := repo.Restore(ctx, s2.ID, d2, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			sameTree(t, want2, readTree(t, d2))
			if rep, err := repo.Verify(ctx); err != nil || !rep.OK() || rep.Snapshots != 2 {
				t.Fatalf("verify: %+v %v", rep, err)
			}
		})
	}
}

// TestCrashLeavesTempAndLock simulates what a kill -9 leaves (a lock that is
// never refreshed, a half-written temporary file, blobs without a record):
// earlier snapshots verify, the next snapshot succeeds, and prune cleans up.
func TestCrashLeftovers(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := t.TempDir()
	writeTree(t, src, treeSpec{files: 50}, 5)
	s1, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	crashed := []byte(`{"created":"2020-01-01T00:00:00Z","refreshed":"2020-01-01T00:00:00Z","pid":1}`)
	if err := st.PutRecord(ctx, KindLock, "20200101T000000.000000000Z-dead", crashed); err != nil {
		t.Fatal(err)
	}
	orphan := []byte("a chunk of a snapshot that never finished")
	if err := st.Put(ctx, Hash(orphan), encodeBlob(orphan)); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(st.Root(), "tmp", "put-12345")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	backdate(t, st, 2)
	if err := os.Chtimes(tmp, hoursAgo(2), hoursAgo(2)); err != nil {
		t.Fatal(err)
	}

	if rep, err := repo.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if _, err := repo.Snapshot(ctx, src, Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Prune(ctx, PruneOptions{Retention: DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	if rep.StaleLocks != 1 || rep.TempRemoved != 1 || rep.BlobsDeleted != 1 || len(rep.Kept) != 2 {
		t.Errorf("prune: %+v; want the stale lock, the temp file and the orphan removed, both snapshots kept", rep)
	}
	if ok, _ := st.Has(ctx, Hash(orphan)); ok {
		t.Error("orphan blob survived prune")
	}
	if _, err := repo.Restore(ctx, s1.ID, t.TempDir(), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestBadRecord(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	s1, err := repo.Snapshot(ctx, src, Options{Source: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(ctx, KindSnapshot, "29990101T000000.000000000Z-garbage", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !slices.Equal(rep.BadRecords, []string{"29990101T000000.000000000Z-garbage"}) || rep.Snapshots != 1 {
		t.Errorf("verify: %+v", rep)
	}
	// Snapshots go on (the bad record is not a parent) ...
	latest, err := repo.Latest(ctx, "x")
	if err != nil || latest.ID != s1.ID {
		t.Fatalf("latest = %v %v", latest.ID, err)
	}
	if _, err := repo.Snapshot(ctx, src, Options{Source: "x"}); err != nil {
		t.Fatal(err)
	}
	// ... but prune refuses to guess what the bad record references.
	if _, err := repo.Prune(ctx, PruneOptions{Retention: DefaultRetention}); err == nil {
		t.Error("prune ran with an unreadable snapshot record")
	}
}

func TestCorruptTree(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "top.txt"), []byte("top"), 0o644)
	writeFile(t, filepath.Join(src, "sub", "deep", "a.txt"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(src, "other", "b.txt"), []byte("b"), 0o644)
	snap, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := repo.lookup(ctx, snap.Tree, "sub")
	if err != nil {
		t.Fatal(err)
	}
	p := st.blobPath(*sub.Subtree)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, encodeBlob([]byte(`{"nodes":[]}`)), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := repo.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != "tree" || rep.Problems[0].Missing ||
		!slices.Equal(rep.Problems[0].Paths, []string{"sub"}) || !slices.Equal(rep.Problems[0].Snapshots, []string{snap.ID}) {
		t.Fatalf("verify: %+v", rep.Problems)
	}
	dst := t.TempDir()
	_, err = repo.Restore(ctx, snap.ID, dst, RestoreOptions{})
	var re *RestoreError
	if !errors.As(err, &re) || re.Path != "sub" || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore: %v", err)
	}
	for _, rel := range []string{"top.txt", "other/b.txt"} {
		if _, err := os.Stat(filepath.Join(dst, rel)); err != nil {
			t.Errorf("%s not restored: %v", rel, err)
		}
	}
	if _, err := repo.Prune(ctx, PruneOptions{Retention: DefaultRetention}); err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("prune over a damaged tree: %v", err)
	}
}

// lockWatcher blocks blob writes until released and reports lock writes.
type lockWatcher struct {
	Store
	release chan struct{}
	locks   chan []byte
}

func (l *lockWatcher) Put(ctx context.Context, id ID, data []byte) error {
	select {
	case <-l.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.Store.Put(ctx, id, data)
}

func (l *lockWatcher) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	err := l.Store.PutRecord(ctx, kind, name, data)
	if kind == KindLock {
		select {
		case l.locks <- data:
		default:
		}
	}
	return err
}

func TestLockRefreshedWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	base, st := newRepo(t)
	w := &lockWatcher{Store: st, release: make(chan struct{}), locks: make(chan []byte, 1)}
	repo := &Repo{store: w, cfg: base.cfg, lockRefresh: time.Millisecond, lockStale: base.lockStale}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	done := make(chan error, 1)
	go func() {
		_, err := repo.Snapshot(ctx, src, Options{})
		done <- err
	}()
	var first, refreshed lock
	if err := json.Unmarshal(<-w.locks, &first); err != nil {
		t.Fatal(err)
	}
	for refreshed.Refreshed.Equal(first.Refreshed) || refreshed.Refreshed.IsZero() {
		if err := json.Unmarshal(<-w.locks, &refreshed); err != nil {
			t.Fatal(err)
		}
	}
	if !refreshed.Created.Equal(first.Created) || !refreshed.Refreshed.After(first.Refreshed) {
		t.Errorf("refresh changed %+v into %+v", first, refreshed)
	}
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names, err := st.ListRecords(ctx, KindLock); err != nil || len(names) != 0 {
		t.Errorf("lock left after the snapshot: %v %v", names, err)
	}
}

// TestCorruptChunkInLargeFile: a bad chunk in the middle of a many-chunk file
// (fetched ahead of the write) fails that file only, naming the chunk.
func TestCorruptChunkInLargeFile(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, treeSpec{files: 20, largeSize: 12 << 20}, 9)
	snap, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := chunkOf(t, repo, snap, "big/large.bin")
	if len(chunks) < 3 {
		t.Fatalf("12 MiB in %d chunks", len(chunks))
	}
	bad := len(chunks) / 2
	if err := os.Remove(st.blobPath(chunks[bad])); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	_, err = repo.Restore(ctx, snap.ID, dst, RestoreOptions{})
	want := fmt.Sprintf("restore big/large.bin: chunk %d of %d: blob %s: not found", bad+1, len(chunks), chunks[bad].Short())
	if err == nil || err.Error() != want {
		t.Fatalf("restore error %q, want %q", err, want)
	}
	if _, err := os.Lstat(filepath.Join(dst, "big", "large.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a partial large.bin was left: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(dst, "big"))
	if err != nil || len(entries) != 0 {
		t.Errorf("big/ holds %v (%v), want nothing (no temporary file)", entries, err)
	}
	want2 := readTree(t, src)
	delete(want2, "big/large.bin")
	sameTree(t, want2, readTree(t, dst))
}

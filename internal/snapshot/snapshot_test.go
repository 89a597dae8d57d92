package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

// TestSnapshotIncrementalRestore is the main scenario: a tree of a few
// thousand files, a snapshot, a ~1% change, a second snapshot that stores
// about the changed bytes and reads only the changed files, and restores of
// both that are byte-identical.
func TestSnapshotIncrementalRestore(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, _ := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	const largeSize = 16 << 20
	small := writeTree(t, src, treeSpec{files: 2000, largeSize: largeSize}, 1)
	want1 := readTree(t, src)

	s1, err := repo.Snapshot(ctx, src, Options{Source: "env-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full snapshot: %+v", s1.Stats)
	if s1.Stats.Files != int64(len(small))+3 { // + large.bin, private/key, tool.sh
		t.Errorf("files = %d, want %d", s1.Stats.Files, len(small)+3)
	}
	if s1.Stats.Symlinks != 4 || s1.Stats.Excluded != 2 {
		t.Errorf("symlinks = %d, excluded = %d; want 4, 2", s1.Stats.Symlinks, s1.Stats.Excluded)
	}
	if s1.Stats.FilesRead != s1.Stats.Files || s1.Stats.BytesRead != s1.Stats.BytesScanned {
		t.Errorf("first snapshot read %d files / %d bytes, want all %d / %d", s1.Stats.FilesRead, s1.Stats.BytesRead, s1.Stats.Files, s1.Stats.BytesScanned)
	}

	r1 := filepath.Join(t.TempDir(), "r1")
	rst, err := repo.Restore(ctx, s1.ID, r1, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore: %+v", rst)
	sameTree(t, want1, readTree(t, r1))

	// Change ~1%: rewrite 1% of the small files, add one, delete one,
	// chmod one, retarget a symlink, overwrite 64 KiB in the large file.
	changed := map[string]bool{}
	var changedBytes int64
	for i := 0; i < len(small)/100; i++ {
		rel := small[i*97%len(small)]
		p := filepath.Join(src, rel)
		data := []byte(strings.Repeat("changed "+rel+"\n", 50))
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, data, 0o644)
		changed[rel] = true
		changedBytes += int64(len(data))
	}
	writeFile(t, filepath.Join(src, "d05", "new.txt"), []byte("a new file\n"), 0o644)
	changed["d05/new.txt"] = true
	changedBytes += 11
	if err := os.Remove(filepath.Join(src, filepath.FromSlash(small[1]))); err != nil {
		t.Fatal(err)
	}
	chmodded := small[2]
	if err := os.Chmod(filepath.Join(src, filepath.FromSlash(chmodded)), 0o611); err != nil {
		t.Fatal(err)
	}
	changed[chmodded] = true // ctime changed: read again, but its chunks are already stored
	if err := os.Remove(filepath.Join(src, "link-rel")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "d00", filepath.Join(src, "link-rel"))
	f, err := os.OpenFile(filepath.Join(src, "big", "large.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte(strings.Repeat("x", 64<<10))
	if _, err := f.WriteAt(patch, largeSize/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	changed["big/large.bin"] = true
	changedBytes += int64(len(patch))
	want2 := readTree(t, src)

	var mu sync.Mutex
	var opened []string
	s2, err := repo.Snapshot(ctx, src, Options{Source: "env-1", openHook: func(rel string) {
		mu.Lock()
		opened = append(opened, rel)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("incremental snapshot: %+v", s2.Stats)
	t.Logf("changed %d bytes of %d scanned (%.2f%%); the second snapshot stored %d new chunk+tree bytes plain, %d compressed, in %d chunks and %d trees",
		changedBytes, s2.Stats.BytesScanned, 100*float64(changedBytes)/float64(s2.Stats.BytesScanned),
		s2.Stats.NewPlainBytes, s2.Stats.NewBytes, s2.Stats.NewChunks, s2.Stats.NewTrees)
	if s2.Parent != s1.ID {
		t.Errorf("parent = %q, want %q", s2.Parent, s1.ID)
	}
	// Unchanged files were not opened: exactly the changed ones were.
	slices.Sort(opened)
	var wantOpened []string
	for rel := range changed {
		wantOpened = append(wantOpened, rel)
	}
	slices.Sort(wantOpened)
	if !slices.Equal(opened, wantOpened) {
		t.Errorf("opened %d files %v\nwant the %d changed ones %v", len(opened), opened, len(wantOpened), wantOpened)
	}
	if s2.Stats.FilesRead != int64(len(wantOpened)) {
		t.Errorf("FilesRead = %d, want %d", s2.Stats.FilesRead, len(wantOpened))
	}
	// The new data is about the changed bytes: the rewritten files, plus
	// at most the chunks around the patch in the large file (a chunk is at
	// most 4 MiB; the patch touches one or two), plus the changed trees.
	bound := changedBytes + 2*int64(repo.Config().MaxChunk) + 512<<10
	if s2.Stats.NewPlainBytes > bound {
		t.Errorf("second snapshot stored %d new bytes, more than the bound %d", s2.Stats.NewPlainBytes, bound)
	}
	if s2.Stats.NewBytes > s1.Stats.NewBytes/4 {
		t.Errorf("second snapshot stored %d bytes, the first %d: not incremental", s2.Stats.NewBytes, s1.Stats.NewBytes)
	}

	r2 := filepath.Join(t.TempDir(), "r2")
	if _, err := repo.Restore(ctx, s2.ID, r2, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want2, readTree(t, r2))
	r1b := filepath.Join(t.TempDir(), "r1b")
	if _, err := repo.Restore(ctx, s1.ID, r1b, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want1, readTree(t, r1b))

	vstart := time.Now()
	rep, err := repo.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify took %v: %d snapshots, %d trees, %d chunks, %d bytes", time.Since(vstart), rep.Snapshots, rep.Trees, rep.Chunks, rep.Bytes)
	if !rep.OK() || rep.Snapshots != 2 {
		t.Fatalf("verify: %+v", rep)
	}

	// A third snapshot of an unchanged tree reads nothing and stores
	// nothing but (at most) nothing new.
	s3, err := repo.Snapshot(ctx, src, Options{Source: "env-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Stats.FilesRead != 0 || s3.Stats.NewChunks != 0 || s3.Stats.NewTrees != 0 || s3.Tree != s2.Tree {
		t.Errorf("unchanged tree: read %d files, stored %d chunks and %d trees; tree %s vs %s",
			s3.Stats.FilesRead, s3.Stats.NewChunks, s3.Stats.NewTrees, s3.Tree.Short(), s2.Tree.Short())
	}
}

func TestRestoreSubPath(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, _ := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	small := writeTree(t, src, treeSpec{files: 60}, 2)
	snap, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := readTree(t, src)

	// One file.
	dst := t.TempDir()
	st, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{Path: small[7]})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 {
		t.Errorf("restored %d files, want 1", st.Files)
	}
	got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(small[7])))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(all[small[7]].data) {
		t.Errorf("restored %s differs", small[7])
	}

	// One directory, with its subdirectories, symlinks and modes.
	dst = t.TempDir()
	if _, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{Path: "/d01/"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]entry{}
	for rel, e := range readTree(t, filepath.Join(src, "d01")) {
		want[rel] = e
	}
	sameTree(t, want, readTree(t, filepath.Join(dst, "d01")))

	// A path that is not there.
	_, err = repo.Restore(ctx, snap.ID, t.TempDir(), RestoreOptions{Path: "d01/nope"})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("restore of a missing path: %v, want ErrNotFound", err)
	}

	// Listing a directory of the snapshot.
	nodes, err := repo.ReadDir(ctx, snap.ID, "d01")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.FileName())
	}
	entries, err := os.ReadDir(filepath.Join(src, "d01"))
	if err != nil {
		t.Fatal(err)
	}
	var wantNames []string
	for _, e := range entries {
		wantNames = append(wantNames, e.Name())
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("ReadDir(d01) = %v, want %v", names, wantNames)
	}
	if _, err := repo.ReadDir(ctx, snap.ID, "tool.sh"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadDir of a file: %v", err)
	}
	if root, err := repo.ReadDir(ctx, snap.ID, ""); err != nil || len(root) == 0 {
		t.Errorf("ReadDir of the root: %d entries, %v", len(root), err)
	}
}

func TestSnapshotExcludesConfigurable(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, _ := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "node_modules", "a.js"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("k"), 0o644)
	writeFile(t, filepath.Join(src, "obj", "x.o"), []byte("o"), 0o644)
	writeFile(t, filepath.Join(src, "docs", "_site", "index.html"), []byte("h"), 0o644)

	snap, err := repo.Snapshot(ctx, src, Options{Excludes: []string{"*.o", "docs/_site/"}})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		"node_modules/a.js":     true, // the defaults are replaced
		"keep.txt":              true,
		"obj/x.o":               false,
		"obj":                   true,
		"docs/_site":            false,
		"docs/_site/index.html": false,
	} {
		_, err := os.Lstat(filepath.Join(dst, rel))
		if got := err == nil; got != want {
			t.Errorf("%s restored = %v, want %v", rel, got, want)
		}
	}
	if _, err := repo.Snapshot(ctx, src, Options{Excludes: []string{"[x"}}); err == nil {
		t.Error("a bad exclude pattern was accepted")
	}
}

func TestExcludeMatch(t *testing.T) {
	t.Parallel()
	ex, err := compileExcludes(append(slices.Clone(DefaultExcludes), "*.log", "docs/_site/", "/top.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{"node_modules", true, true},
		{"a/b/node_modules", true, true},
		{"node_modules", false, false}, // a file of that name
		{"src/dist", true, true},
		{"src/distribution", true, false},
		{"x/.cache", true, true},
		{"pkg/__pycache__", true, true},
		{"rust/target", true, true},
		{"app.log", false, true},
		{"a/app.log", false, true},
		{"docs/_site", true, true},
		{"x/docs/_site", true, false},
		{"top.txt", false, true},
		{"a/top.txt", false, false},
		{"main.go", false, false},
	} {
		if got := ex.match(tc.rel, tc.isDir); got != tc.want {
			t.Errorf("match(%q, dir=%v) = %v, want %v", tc.rel, tc.isDir, got, tc.want)
		}
	}
}

// TestSnapshotRecordsTime checks that the record carries the given time and
// that Latest and Snapshots order by it.
func TestSnapshotRecordsTime(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, _ := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := repo.Snapshot(ctx, src, Options{Source: "x", Time: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Snapshot(ctx, src, Options{Source: "x", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Snapshot(ctx, src, Options{Source: "y", Time: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	latest, err := repo.Latest(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if latest.ID != a.ID || !latest.Time.Equal(t0.Add(time.Hour)) {
		t.Errorf("latest of x = %s at %v, want %s", latest.ID, latest.Time, a.ID)
	}
	if _, err := repo.Latest(ctx, "z"); !errors.Is(err, ErrNotFound) {
		t.Errorf("latest of an unknown source: %v", err)
	}
}

// TestOddNamesAndRestoreOver covers names JSON cannot carry as strings and a
// restore over an existing, modified copy of the tree.
func TestOddNamesAndRestoreOver(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, _ := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "latin1-\xe9t\xe9.txt"), []byte("invalid UTF-8 name"), 0o644)
	writeFile(t, filepath.Join(src, "new\nline and space", "ünïcødé"), []byte("ok"), 0o640)
	writeFile(t, filepath.Join(src, "empty-file"), nil, 0o600)
	symlink(t, "target-\xff", filepath.Join(src, "odd-link"))
	mkdir(t, filepath.Join(src, "ro-dir"), 0o755)
	writeFile(t, filepath.Join(src, "ro-dir", "f"), []byte("in a read-only dir"), 0o444)
	if err := os.Chmod(filepath.Join(src, "ro-dir"), 0o555); err != nil {
		t.Fatal(err)
	}
	want := readTree(t, src)
	snap, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	t.Cleanup(func() { // let t.TempDir remove them when not root
		os.Chmod(filepath.Join(src, "ro-dir"), 0o755)
		os.Chmod(filepath.Join(dst, "ro-dir"), 0o755)
	})
	if _, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want, readTree(t, dst))

	// Damage the restored copy: changed contents, a file where a
	// directory was, a directory where a symlink was, a deleted file.
	writeFile(t, filepath.Join(dst, "empty-file"), []byte("not empty"), 0o777)
	if err := os.RemoveAll(filepath.Join(dst, "new\nline and space")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dst, "new\nline and space"), []byte("a file now"), 0o644)
	if err := os.Remove(filepath.Join(dst, "odd-link")); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(dst, "odd-link", "sub"), 0o755)
	if err := os.Remove(filepath.Join(dst, "latin1-\xe9t\xe9.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want, readTree(t, dst))
}

// TestLostParentChunkAndVanishedFile: a file whose chunk is gone from the
// store is read again instead of reusing the parent's chunk list, and a file
// deleted during the walk is left out.
func TestLostParentChunkAndVanishedFile(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("file a, whose chunk gets lost"), 0o644)
	writeFile(t, filepath.Join(src, "b.txt"), []byte("file b, unchanged"), 0o644)
	s1, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lost := chunkOf(t, repo, s1, "a.txt")[0]
	if err := os.Remove(st.blobPath(lost)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "c.txt"), []byte("deleted while the snapshot runs"), 0o644)
	want := readTree(t, src)

	var opened []string
	s2, err := repo.Snapshot(ctx, src, Options{openHook: func(rel string) {
		opened = append(opened, rel)
		if rel == "c.txt" {
			if err := os.Remove(filepath.Join(src, "c.txt")); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(opened)
	if !slices.Equal(opened, []string{"a.txt", "c.txt"}) {
		t.Errorf("opened %v, want a.txt (lost chunk) and c.txt (new)", opened)
	}
	if s2.Stats.Files != 2 || s2.Stats.Skipped != 1 || s2.Stats.NewChunks != 1 {
		t.Errorf("stats %+v: want 2 files, 1 skipped, 1 new chunk", s2.Stats)
	}
	if ok, _ := st.Has(ctx, lost); !ok {
		t.Error("the lost chunk was not stored again")
	}
	dst := t.TempDir()
	if _, err := repo.Restore(ctx, s2.ID, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	delete(want, "c.txt")
	got := readTree(t, dst)
	// The root's mtime changed when c.txt was removed.
	delete(want, ".")
	delete(got, ".")
	sameTree(t, want, got)
}

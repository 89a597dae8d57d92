package storetest

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/snapshot"
)

// RoundTrip drives the snapshot engine on st: it snapshots a tree, changes
// one file and removes another, snapshots again (an incremental snapshot
// whose unchanged files go through Missing), restores both byte-identical,
// prunes the first away with the least grace (deleting what only it used)
// and verifies what is left. st must be empty.
func RoundTrip(t *testing.T, st snapshot.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := snapshot.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src)
	want1 := ReadTree(t, src)
	s1, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "env-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Stats.NewChunks < 3 {
		t.Errorf("first snapshot stored %d chunks; the 3 MiB file alone should make several", s1.Stats.NewChunks)
	}

	// Change one file and remove another; everything else is reused
	// through Missing.
	WriteFile(t, filepath.Join(src, "docs", "readme.txt"), []byte("changed\n"), 0o644)
	if err := os.Remove(filepath.Join(src, "a.txt")); err != nil {
		t.Fatal(err)
	}
	want2 := ReadTree(t, src)
	s2, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "env-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Parent != s1.ID || s2.Stats.FilesRead != 1 {
		t.Errorf("second snapshot: parent %q (want %q), read %d files (want 1)", s2.Parent, s1.ID, s2.Stats.FilesRead)
	}
	Restore(t, repo, s1.ID, want1)
	Restore(t, repo, s2.ID, want2)

	// Prune: s1 is forgotten and its own blobs (the old readme's chunk,
	// the trees that listed it and a.txt) go once their last touch is a
	// second old.
	WaitForClock(t, time.Now().Add(2*time.Second))
	rep, err := repo.Prune(ctx, snapshot.PruneOptions{Retention: snapshot.Retention{KeepLast: 1}, Grace: snapshot.MinGrace})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Forgotten) != 1 || rep.Forgotten[0] != s1.ID || rep.BlobsDeleted < 2 {
		t.Errorf("prune = %+v, want s1 forgotten and at least 2 blobs (the old readme's chunk, the root tree) deleted", rep)
	}
	vr, err := repo.Verify(ctx)
	if err != nil || !vr.OK() || vr.Snapshots != 1 {
		t.Fatalf("verify after prune: %+v %v", vr, err)
	}
	Restore(t, repo, s2.ID, want2)
}

// writeTree writes a tree with a file of several chunks, an executable, an
// empty file, an empty directory and a symlink, its files' times set in
// the past.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	big := make([]byte, 3<<20) // several chunks
	for i := range big {
		big[i] = byte(i*7 + i/4096)
	}
	WriteFile(t, filepath.Join(dir, "big.bin"), big, 0o600)
	WriteFile(t, filepath.Join(dir, "a.txt"), []byte("alpha\n"), 0o644)
	WriteFile(t, filepath.Join(dir, "docs", "readme.txt"), []byte(strings.Repeat("read me\n", 1000)), 0o640)
	WriteFile(t, filepath.Join(dir, "bin", "tool.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	WriteFile(t, filepath.Join(dir, "empty.txt"), nil, 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "empty", "dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/tool.sh", filepath.Join(dir, "tool")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, p := range []string{"big.bin", "a.txt", "docs/readme.txt", "bin/tool.sh", "empty.txt"} {
		if err := os.Chtimes(filepath.Join(dir, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// WriteFile writes p, making its directory, with exactly mode (past the
// umask).
func WriteFile(t testing.TB, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// Entry is what a restore must reproduce of a file, directory or symlink.
type Entry struct {
	Mode  fs.FileMode
	Data  []byte    // contents or symlink target
	MTime time.Time // regular files only
}

// ReadTree reads what a restore must reproduce of the tree at root, by
// slash-separated path (root itself left out).
func ReadTree(t testing.TB, root string) map[string]Entry {
	t.Helper()
	m := map[string]Entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Mode: info.Mode()}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Data = []byte(target)
		case d.Type().IsRegular():
			if e.Data, err = os.ReadFile(p); err != nil {
				return err
			}
			e.MTime = info.ModTime()
		}
		m[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// SameTree reports each difference between a tree read with ReadTree and
// the one wanted.
func SameTree(t testing.TB, want, got map[string]Entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: not restored", p)
		case g.Mode != w.Mode:
			t.Errorf("%s: mode %v, want %v", p, g.Mode, w.Mode)
		case !bytes.Equal(g.Data, w.Data):
			t.Errorf("%s: contents differ (%d bytes, want %d)", p, len(g.Data), len(w.Data))
		case !g.MTime.Equal(w.MTime):
			t.Errorf("%s: mtime %v, want %v", p, g.MTime, w.MTime)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the snapshot", p)
		}
	}
}

// Restore restores snapshot id of repo into a new directory and checks
// that it is the tree wanted.
func Restore(t testing.TB, repo *snapshot.Repo, id string, want map[string]Entry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dst := filepath.Join(t.TempDir(), "restore")
	if _, err := repo.Restore(ctx, id, dst, snapshot.RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
	SameTree(t, want, ReadTree(t, dst))
}

package snapshot

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

func newRepo(t testing.TB) (*Repo, *DirStore) {
	t.Helper()
	st, err := OpenDirStore(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(wait.Context(t, wait.VeryLong), st)
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

// treeSpec sizes a generated test tree.
type treeSpec struct {
	files     int   // small files (text and binary, 0–8 KiB)
	largeSize int64 // one large random file, "big/large.bin"
}

// writeTree creates a tree under dir: small text and binary files in nested
// directories with various modes, symlinks (relative, absolute, dangling),
// empty directories, a large file and an excluded node_modules. It returns
// the relative paths of the small files.
func writeTree(t testing.TB, dir string, spec treeSpec, seed uint64) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var small []string
	modes := []fs.FileMode{0o644, 0o600, 0o755, 0o640, 0o444}
	for i := range spec.files {
		rel := filepath.Join(fmt.Sprintf("d%02d", i%37), fmt.Sprintf("s%d", i%5), fmt.Sprintf("f%05d", i))
		var data []byte
		n := rng.IntN(8 << 10)
		if i%3 == 0 {
			data = randomBytes(rng, n)
			rel += ".bin"
		} else {
			data = textBytes(rng, n)
			rel += ".txt"
		}
		writeFile(t, filepath.Join(dir, rel), data, modes[i%len(modes)])
		small = append(small, filepath.ToSlash(rel))
	}
	if spec.largeSize > 0 {
		writeFile(t, filepath.Join(dir, "big", "large.bin"), randomBytes(rng, int(spec.largeSize)), 0o600)
	}
	for _, d := range []string{"empty", "d00/emptysub", "nested/a/b/c"} {
		mkdir(t, filepath.Join(dir, d), 0o755)
	}
	mkdir(t, filepath.Join(dir, "private"), 0o700)
	writeFile(t, filepath.Join(dir, "private", "key"), []byte("secret\n"), 0o600)
	writeFile(t, filepath.Join(dir, "tool.sh"), []byte("#!/bin/sh\necho hi\n"), 0o4755)
	symlink(t, "tool.sh", filepath.Join(dir, "link-rel"))
	symlink(t, "/etc/hostname", filepath.Join(dir, "link-abs"))
	symlink(t, "does/not/exist", filepath.Join(dir, "d01", "dangling"))
	symlink(t, "../d02", filepath.Join(dir, "d01", "dirlink"))
	writeFile(t, filepath.Join(dir, "node_modules", "left", "index.js"), []byte("module.exports = 1\n"), 0o644)
	writeFile(t, filepath.Join(dir, "d03", "__pycache__", "x.pyc"), []byte{1, 2, 3}, 0o644)
	// Distinct, past mtimes so that restored times are really restored.
	base := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	i := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		i++
		ts := base.Add(time.Duration(i) * time.Second)
		if d.Type()&fs.ModeSymlink != 0 {
			return setSymlinkTime(p, ts)
		}
		return os.Chtimes(p, ts, ts)
	})
	if err != nil {
		t.Fatal(err)
	}
	return small
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

var words = strings.Fields("func main return if else for range struct interface package import const var type map chan go defer select case default")

func textBytes(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(8) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func writeFile(t testing.TB, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(p, 0o600) // an existing read-only file (a no-op for root)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

type entry struct {
	typ    string
	mode   fs.FileMode
	mtime  time.Time
	data   []byte // file contents or symlink target
	isRoot bool
}

// readTree captures a tree (everything DefaultExcludes does not exclude).
func readTree(t testing.TB, dir string) map[string]entry {
	t.Helper()
	ex, err := compileExcludes(DefaultExcludes)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && ex.match(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode() & permBits, mtime: fi.ModTime(), isRoot: rel == "."}
		switch {
		case fi.IsDir():
			e.typ = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.typ = "symlink"
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.data = []byte(target)
			e.mode = 0 // symlink permissions are not meaningful on Linux
		default:
			e.typ = "file"
			if e.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails the test unless got is byte-identical to want (contents,
// types, modes, symlink targets and mtimes).
func sameTree(t testing.TB, want, got map[string]entry) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			report("%s: missing from the restored tree", rel)
		case g.typ != w.typ:
			report("%s: type %s, want %s", rel, g.typ, w.typ)
		case g.mode != w.mode:
			report("%s: mode %v, want %v", rel, g.mode, w.mode)
		case !bytes.Equal(g.data, w.data):
			report("%s: contents differ (%d bytes, want %d)", rel, len(g.data), len(w.data))
		case !g.mtime.Equal(w.mtime):
			report("%s: mtime %v, want %v", rel, g.mtime, w.mtime)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			report("%s: restored but not in the original", rel)
		}
	}
	if bad > 20 {
		t.Errorf("... %d differences in all", bad)
	}
}

package supervisorbin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var fakeBin = []byte("\x7fELF not really a supervisor, but bytes to place")

func TestExtractWritesOnceAndReuses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "bin")
	path, written, err := Extract(dir, fakeBin)
	if err != nil || !written {
		t.Fatalf("first Extract = %q, %v, %v; want written", path, written, err)
	}
	if filepath.Dir(path) != dir || !strings.HasPrefix(filepath.Base(path), Prefix) || filepath.Base(path) != FileName(fakeBin) {
		t.Fatalf("path %q: want %s/%s", path, dir, FileName(fakeBin))
	}
	checkFile(t, path, fakeBin)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("dir mode %v, %v; want 0755", fi.Mode(), err)
	}
	before, _ := os.Stat(path)

	again, written, err := Extract(dir, fakeBin)
	if err != nil || written || again != path {
		t.Fatalf("second Extract = %q, %v, %v; want %q reused", again, written, err, path)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Fatal("an intact file was rewritten")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only the supervisor (no temporary files left)", len(entries))
	}
}

func TestExtractReplacesDamagedFile(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(t *testing.T, path string){
		"truncated": func(t *testing.T, path string) {
			if err := os.Truncate(path, 5); err != nil {
				t.Fatal(err)
			}
		},
		"same size, other bytes": func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, len(fakeBin)), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"not executable": func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"a directory": func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"a symlink to the right bytes": func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(other, fakeBin, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, path); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, _, err := Extract(dir, fakeBin)
			if err != nil {
				t.Fatal(err)
			}
			damage(t, path)
			again, written, err := Extract(dir, fakeBin)
			if name == "a directory" {
				// rename cannot put a file over a directory: the error
				// must say where.
				if err == nil {
					t.Fatalf("Extract over a directory = %q, %v; want an error", again, written)
				}
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q does not name %s", err, path)
				}
				return
			}
			if err != nil || !written || again != path {
				t.Fatalf("Extract over a damaged file = %q, %v, %v; want %q written", again, written, err, path)
			}
			checkFile(t, path, fakeBin)
		})
	}
}

func TestExtractRemovesOlderVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := []byte("the previous release's supervisor")
	oldPath, _, err := Extract(dir, old)
	if err != nil {
		t.Fatal(err)
	}
	unrelated := filepath.Join(dir, "keep-me")
	if err := os.WriteFile(unrelated, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path, written, err := Extract(dir, fakeBin)
	if err != nil || !written || path == oldPath {
		t.Fatalf("Extract = %q, %v, %v", path, written, err)
	}
	if _, err := os.Lstat(oldPath); !os.IsNotExist(err) {
		t.Fatalf("older version %s still there: %v", oldPath, err)
	}
	if _, err := os.Lstat(unrelated); err != nil {
		t.Fatalf("a file that is not a supervisor was removed: %v", err)
	}
	checkFile(t, path, fakeBin)
}

func TestExtractConcurrent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "bin")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, _, err := Extract(dir, fakeBin)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkFile(t, filepath.Join(dir, FileName(fakeBin)), fakeBin)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries after concurrent extractions, want 1", len(entries))
	}
}

func TestExtractUnwritableDir(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	notDir := filepath.Join(parent, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"parent is a file":     filepath.Join(notDir, "bin"),
		"parent missing":       filepath.Join(parent, "missing", "bin"),
		"dir is a file itself": notDir,
	} {
		path, written, err := Extract(dir, fakeBin)
		if err == nil {
			t.Fatalf("%s: Extract = %q, %v; want an error", name, path, written)
		}
		if !strings.Contains(err.Error(), "supervisor binary") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("%s: error %q does not say what it was writing where", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "missing")); !os.IsNotExist(err) {
		t.Fatalf("Extract created the missing parent: %v", err)
	}

	// Directory permissions do not stop root (these tests often run as
	// root); the paths above fail for everyone.
	if os.Geteuid() != 0 {
		ro := filepath.Join(parent, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		_, _, err := Extract(ro, fakeBin)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("read-only dir: %v; want permission denied", err)
		}
	}
}

func TestExtractNothing(t *testing.T) {
	t.Parallel()
	if _, _, err := Extract(t.TempDir(), nil); err == nil {
		t.Fatal("Extract of no bytes succeeded")
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("%s: mode %v, want a regular 0755 file", path, fi.Mode())
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q (%v), want %q", path, got, err, want)
	}
}

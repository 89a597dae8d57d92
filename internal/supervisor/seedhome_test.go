package supervisor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSeedHome: an empty volume gets the image's home (files, directories,
// links, modes); one with anything in it, or a missing image home, is left
// as it is.
func TestSeedHome(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{".profile", 0o644}, {".local/share/code-server/extensions/ext/package.json", 0o600}, {"bin/tool", 0o755}} {
		p := filepath.Join(src, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.path), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("bin/tool", filepath.Join(src, "tool")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	var warn bytes.Buffer
	if err := SeedHome(src, dst, &warn); err != nil || warn.Len() > 0 {
		t.Fatalf("SeedHome: %v, warnings %q", err, warn.String())
	}
	for path, mode := range map[string]os.FileMode{".profile": 0o644, ".local/share/code-server/extensions/ext/package.json": 0o600, "bin/tool": 0o755} {
		b, err := os.ReadFile(filepath.Join(dst, path))
		fi, serr := os.Stat(filepath.Join(dst, path))
		if err != nil || serr != nil || string(b) != path || fi.Mode().Perm() != mode {
			t.Errorf("%s: %q %v, mode %v %v", path, b, err, fi, serr)
		}
	}
	if link, err := os.Readlink(filepath.Join(dst, "tool")); err != nil || link != "bin/tool" {
		t.Errorf("link: %q, %v", link, err)
	}

	// Not empty: left alone.
	used := t.TempDir()
	if err := os.WriteFile(filepath.Join(used, "mine"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SeedHome(src, used, &warn); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(used); len(entries) != 1 {
		t.Errorf("a used home was seeded: %v", entries)
	}
	// No home in the image: nothing.
	empty := t.TempDir()
	if err := SeedHome(filepath.Join(src, "missing"), empty, &warn); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("seeded from nothing: %v", entries)
	}
}

package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	t.Parallel()
	short := t.TempDir()
	if len(short) > 60 {
		short = "/tmp"
	}
	if p, err := Path(short, "a.sock"); err != nil || p != filepath.Join(short, "a.sock") {
		t.Errorf("Path(%s) = %q, %v; want it in the directory", short, p, err)
	}
	long := filepath.Join("/var/lib", strings.Repeat("d", 120))
	p1, err := Path(long, "a.sock")
	if err != nil || len(p1) > MaxPath || !strings.HasPrefix(p1, os.TempDir()) {
		t.Fatalf("Path(long) = %q, %v; want a short path under %s", p1, err, os.TempDir())
	}
	p2, _ := Path(long, "a.sock")
	p3, _ := Path(long+"x", "a.sock")
	if p1 != p2 || p1 == p3 {
		t.Errorf("Path is not stable per directory: %q %q %q", p1, p2, p3)
	}
}

// TestListen: a stale socket file is replaced, modes are set, a directory
// that is a link is refused.
func TestListen(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "d8u-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sub", "s.sock")
	for range 2 { // the second time over the first one's file
		ln, err := Listen(path, 0o755, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 || fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("socket: %v, %v", fi.Mode(), err)
		}
		if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("directory: %v, %v", fi.Mode(), err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		// Leave the file behind, as a killed process would.
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
	}
	if err := os.Symlink(dir, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(dir, "link", "s.sock"), 0o700, 0o600); err == nil || !strings.Contains(err.Error(), "not a directory owned by this user") {
		t.Errorf("Listen in a linked directory: %v", err)
	}
}

package monitor

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDiskUsage: the workspace's files as du counts them (hard links once,
// sparse files by what they use), not measured again until a hundred times
// the last walk's duration has passed, and a lower bound when a walk
// reaches its cap.
func TestDiskUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, n int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a/one", 1<<20)
	write("a/b/two", 2<<20)
	if err := os.Link(filepath.Join(dir, "a/one"), filepath.Join(dir, "one-again")); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	sparse.Close()

	ctx := context.Background()
	now := time.Now()
	d := newDiskUsage(dir)
	got, partial, err := d.usage(ctx, now)
	if err != nil || partial {
		t.Fatalf("usage = %d, %v, %v", got, partial, err)
	}
	// 3 MiB of data, plus directory blocks; not 4 MiB (the link) nor 1 GiB (the sparse file).
	if got < 3<<20 || got > 3<<20+256<<10 {
		t.Fatalf("usage = %d bytes, want about 3 MiB", got)
	}

	write("c/three", 3<<20)
	if again, _, _ := d.usage(ctx, now); again != got {
		t.Errorf("right after a walk: %d, want the last walk's %d", again, got)
	}
	later, _, err := d.usage(ctx, now.Add(time.Hour))
	if err != nil || later < got+3<<20 {
		t.Errorf("after the interval: %d, %v; want at least %d", later, err, got+3<<20)
	}

	capped := newDiskUsage(dir)
	capped.maxEntries = 3
	if n, partial, err := capped.usage(ctx, now); err != nil || !partial || n >= later {
		t.Errorf("capped walk = %d, partial %v, %v; want a partial, smaller figure", n, partial, err)
	}

	if _, _, err := newDiskUsage(filepath.Join(dir, "missing")).usage(ctx, now); err == nil {
		t.Error("a missing directory: no error")
	}
}

package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Run with: go test -run '^$' -bench . -benchtime 3x ./internal/snapshot/
// (about a minute; MB/s is over the whole tree, new-MB/op is what an
// incremental snapshot stores).
//
// The benchmark tree: a 200 MB file (random, so incompressible: the worst
// case for throughput) and 2,000 small text and binary files.
const (
	benchLarge = 200 << 20
	benchFiles = 2000
)

var (
	benchOnce  sync.Once
	benchDir   string
	benchSmall []string
	benchBytes int64
	benchErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchTree builds the benchmark tree once per process.
func benchTree(b *testing.B) (string, []string, int64) {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "snapshot-bench-")
		if benchErr != nil {
			return
		}
		src := filepath.Join(benchDir, "src")
		benchSmall = writeTree(b, src, treeSpec{files: benchFiles, largeSize: benchLarge}, 42)
		for _, e := range readTree(b, src) {
			if e.typ == "file" {
				benchBytes += int64(len(e.data))
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return filepath.Join(benchDir, "src"), benchSmall, benchBytes
}

func benchRepo(b *testing.B) *Repo {
	b.Helper()
	st, err := OpenDirStore(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(context.Background(), st)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkSnapshotFull: a first snapshot into an empty repository.
func BenchmarkSnapshotFull(b *testing.B) {
	src, _, total := benchTree(b)
	ctx := context.Background()
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		repo := benchRepo(b)
		b.StartTimer()
		if _, err := repo.Snapshot(ctx, src, Options{NoParent: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotIncremental: a snapshot after changing 1% of the small
// files and 64 KiB of the large one. Throughput is over the whole tree.
func BenchmarkSnapshotIncremental(b *testing.B) {
	src, small, total := benchTree(b)
	ctx := context.Background()
	repo := benchRepo(b)
	if _, err := repo.Snapshot(ctx, src, Options{Source: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	var newBytes int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for j := range len(small) / 100 {
			rel := small[(i*131+j*97)%len(small)]
			writeFile(b, filepath.Join(src, rel), fmt.Appendf(nil, "iteration %d change %d\n", i, j), 0o644)
		}
		f, err := os.OpenFile(filepath.Join(src, "big", "large.bin"), os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteAt(fmt.Appendf(nil, "%065536d", i), int64(i*7919*4096)%(benchLarge-65536)); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.StartTimer()
		s, err := repo.Snapshot(ctx, src, Options{Source: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		newBytes += s.Stats.NewBytes
	}
	b.ReportMetric(float64(newBytes)/float64(b.N)/(1<<20), "new-MB/op")
}

// BenchmarkRestore: restoring the whole tree into an empty directory.
func BenchmarkRestore(b *testing.B) {
	src, _, total := benchTree(b)
	ctx := context.Background()
	repo := benchRepo(b)
	snap, err := repo.Snapshot(ctx, src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dst := filepath.Join(b.TempDir(), fmt.Sprint(i))
		b.StartTimer()
		if _, err := repo.Restore(ctx, snap.ID, dst, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

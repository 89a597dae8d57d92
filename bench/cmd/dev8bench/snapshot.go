package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"dev8.dev/dev8/internal/snapshot"
)

var (
	snapshotFigures bool
	snapshotRuns    int
	snapLarge       int64
	snapFiles       int
)

func init() {
	flag.BoolVar(&snapshotFigures, "snapshots", true, "measure snapshot full/incremental/restore MB/s (internal/snapshot, a local directory repository)")
	flag.IntVar(&snapshotRuns, "snapshot-runs", 3, "runs of each snapshot figure")
	flag.Int64Var(&snapLarge, "snapshot-large", 200<<20, "size of the snapshot tree's one large (random) file")
	flag.IntVar(&snapFiles, "snapshot-files", 3000, "small files in the snapshot tree")
}

// snapshotBench runs internal/snapshot's operations on a tree of one large
// random file and snapFiles small ones: a full snapshot into an empty
// repository, an incremental one after changing 1 % of the small files and
// 64 KiB of the large one, and a restore into an empty directory. MB/s is
// over the whole tree, as in the package's Go benchmarks.
func snapshotBench(ctx context.Context) error {
	if reason, off := sectionOff("snapshots", snapshotFigures); off {
		results.Skipped = append(results.Skipped, "snapshots: "+reason)
		return nil
	}
	fmt.Printf("== snapshots (%d MiB file + %d small files)\n", snapLarge>>20, snapFiles)
	dir, err := os.MkdirTemp("", "dev8bench-snapshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	small, err := writeSnapshotTree(src)
	if err != nil {
		return err
	}
	var mb float64
	var full, incr, restore, newMB []float64
	for i := range snapshotRuns {
		repoDir := filepath.Join(dir, fmt.Sprintf("repo-%d", i))
		st, err := snapshot.OpenDirStore(repoDir)
		if err != nil {
			return err
		}
		repo, err := snapshot.Open(ctx, st)
		if err != nil {
			return err
		}
		total, err := treeBytes(src)
		if err != nil {
			return err
		}
		mb = float64(total) / 1e6
		t0 := time.Now()
		snap, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "bench"})
		if err != nil {
			return fmt.Errorf("full snapshot: %w", err)
		}
		full = append(full, mb/time.Since(t0).Seconds())

		// Change 1 % of the small files and 64 KiB in the large one.
		for j := range len(small) / 100 {
			if err := os.WriteFile(small[(i*131+j*97)%len(small)], fmt.Appendf(nil, "run %d change %d\n", i, j), 0o644); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(filepath.Join(src, "large.bin"), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(fmt.Appendf(nil, "%065536d", i), (int64(i)*7919*4096)%(snapLarge-65536))
		f.Close()
		if err != nil {
			return err
		}
		if total, err = treeBytes(src); err != nil {
			return err
		}
		mb = float64(total) / 1e6
		t0 = time.Now()
		inc, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "bench"})
		if err != nil {
			return fmt.Errorf("incremental snapshot: %w", err)
		}
		incr = append(incr, mb/time.Since(t0).Seconds())
		if inc.Parent != snap.ID {
			return fmt.Errorf("incremental snapshot's parent is %q, want %q", inc.Parent, snap.ID)
		}
		newMB = append(newMB, float64(inc.Stats.NewBytes)/1e6)

		dst := filepath.Join(dir, fmt.Sprintf("restore-%d", i))
		t0 = time.Now()
		rs, err := repo.Restore(ctx, inc.ID, dst, snapshot.RestoreOptions{})
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		restore = append(restore, mb/time.Since(t0).Seconds())
		if rs.Bytes != total {
			return fmt.Errorf("restore wrote %d bytes, want %d", rs.Bytes, total)
		}
		fmt.Printf("   run %d: full %.0f MB/s, incremental %.0f MB/s (%.2f MB new), restore %.0f MB/s\n", i+1, full[i], incr[i], newMB[i], restore[i])
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.RemoveAll(repoDir); err != nil {
			return err
		}
	}
	note := fmt.Sprintf("%.0f MB tree (%d MiB random file + %d small files), local directory repository on the same disk; MB/s over the whole tree", mb, snapLarge>>20, len(small))
	addFigure(Figure{Section: "7 snapshots", Name: "snapshot, full (empty repository)", Unit: "MB/s", Runs: full, Target: "— (no target in the issue)", Note: note}, full, 0, false)
	addFigure(Figure{Section: "7 snapshots", Name: "snapshot, incremental (1 % of small files + 64 KiB changed)", Unit: "MB/s", Runs: incr, Target: "—", Note: fmt.Sprintf("%s; it stored %.2f MB new (median)", note, median(newMB))}, incr, 0, false)
	addFigure(Figure{Section: "7 snapshots", Name: "restore into an empty directory", Unit: "MB/s", Runs: restore, Target: "—", Note: note}, restore, 0, false)
	return nil
}

// treeBytes is the size of the regular files under root.
func treeBytes(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

// writeSnapshotTree writes the large file and snapFiles small ones (text
// and binary, 100 B to 16 KiB, in 30 directories) under root, and returns
// the small files' paths.
func writeSnapshotTree(root string) ([]string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := writeRandomFile(filepath.Join(root, "large.bin"), snapLarge); err != nil {
		return nil, err
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	var small []string
	for i := range snapFiles {
		d := filepath.Join(root, fmt.Sprintf("dir%02d", i%30))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		n := 100 + rng.IntN(16<<10)
		data := make([]byte, n)
		if i%2 == 0 {
			for k := range data {
				data[k] = "abcdefghij klmnopqrstuvwxyz\n"[rng.IntN(28)]
			}
		} else {
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
		}
		p := filepath.Join(d, fmt.Sprintf("f%05d.dat", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
		small = append(small, p)
	}
	return small, nil
}

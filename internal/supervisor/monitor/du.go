package monitor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Workspace disk use is what the files under the workspace directory take,
// counted as du counts them (allocated blocks, hard links once, not crossing
// into other file systems), not the used space of the file system holding
// it: for the local runtime that is the host's disk, and a docker volume's
// statfs is the host's too. Walking costs one lstat per entry, so it is
// bounded: at most diskMaxEntries entries per walk (past that the figure is
// a lower bound), and after a walk the next waits diskSpacing times as long
// as it took (samples in between report the last figure), which keeps the
// walker's share of a core under 1% however large the workspace. A small
// workspace is walked at every sample (every 30 s by default).
const (
	diskMaxEntries = 1_000_000
	diskSpacing    = 100
)

// diskUsage remembers the last walk of a directory.
type diskUsage struct {
	dir        string
	maxEntries int

	next    time.Time // no walk before
	bytes   int64
	partial bool
}

func newDiskUsage(dir string) *diskUsage {
	return &diskUsage{dir: dir, maxEntries: diskMaxEntries}
}

// errTooMany ends a walk that reached maxEntries.
var errTooMany = errors.New("too many entries")

// usage returns the bytes the directory's files take, walking again when
// the last walk is far enough behind now. partial: the walk stopped at
// maxEntries.
func (d *diskUsage) usage(ctx context.Context, now time.Time) (bytes int64, partial bool, err error) {
	if now.Before(d.next) {
		return d.bytes, d.partial, nil
	}
	start := time.Now()
	root, err := os.Lstat(d.dir)
	if err != nil {
		return 0, false, err
	}
	rootDev, _ := fileID(root)
	var (
		total   int64
		entries int
		seen    = map[inode]bool{}
	)
	err = filepath.WalkDir(d.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			// Unreadable or gone while walking: what is readable counts.
			if path == d.dir {
				return err
			}
			return nil
		}
		if entries++; entries > d.maxEntries {
			return errTooMany
		}
		if entries%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		dev, id := fileID(info)
		if e.IsDir() && path != d.dir && dev != rootDev {
			return filepath.SkipDir // a mount point: another file system
		}
		if id.links > 1 && !e.IsDir() {
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		total += allocated(info)
		return nil
	})
	partial = errors.Is(err, errTooMany)
	if err != nil && !partial {
		return 0, false, err
	}
	d.bytes, d.partial = total, partial
	d.next = now.Add(diskSpacing * time.Since(start))
	return total, partial, nil
}

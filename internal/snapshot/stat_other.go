//go:build !linux

package snapshot

import (
	"io/fs"
	"time"
)

// statExtra is not implemented off Linux: owners are not recorded and change
// detection uses size and mtime only.
func statExtra(fs.FileInfo) (uid, gid uint32, ino uint64, ctime int64) { return 0, 0, 0, 0 }

// setSymlinkTime is not implemented off Linux: a restored symlink keeps the
// time it was created.
func setSymlinkTime(string, time.Time) error { return nil }

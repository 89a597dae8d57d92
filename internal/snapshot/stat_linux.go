package snapshot

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// statExtra returns the owner, inode and ctime (Unix ns) of a file.
func statExtra(fi fs.FileInfo) (uid, gid uint32, ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, 0
	}
	return st.Uid, st.Gid, st.Ino, st.Ctim.Sec*1e9 + st.Ctim.Nsec
}

// setSymlinkTime sets a symlink's own mtime (and atime).
func setSymlinkTime(path string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

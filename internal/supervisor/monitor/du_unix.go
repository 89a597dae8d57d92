//go:build unix

package monitor

import (
	"io/fs"
	"syscall"
)

// inode identifies a file (for counting hard links once).
type inode struct {
	dev, ino uint64
	links    uint64
}

// fileID is the device of info's file and its identity.
func fileID(info fs.FileInfo) (dev uint64, id inode) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, inode{}
	}
	return uint64(st.Dev), inode{dev: uint64(st.Dev), ino: uint64(st.Ino), links: uint64(st.Nlink)}
}

// allocated is the space the file takes on disk: its blocks (512 bytes
// each, whatever the file system's block size), so a sparse file counts
// what it really uses.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}

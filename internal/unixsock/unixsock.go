// Package unixsock places unix sockets, whose path (sun_path) holds at most
// 108 bytes: a data directory deep in a file system, or a test's temporary
// directory, is often too long for one.
package unixsock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// MaxPath leaves a margin below sun_path's 108 bytes.
const MaxPath = 100

// Path is where a socket called name that belongs in dir goes: dir/name,
// or, when that is too long, name in a directory under the system's
// temporary directory named after dir, so it is the same every time for the
// same dir (a server restarted on its data directory finds it again).
func Path(dir, name string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("socket path: %w", err)
	}
	if p := filepath.Join(abs, name); len(p) <= MaxPath {
		return p, nil
	}
	sum := sha256.Sum256([]byte(abs))
	p := filepath.Join(os.TempDir(), "dev8-"+hex.EncodeToString(sum[:8]), name)
	if len(p) > MaxPath {
		return "", fmt.Errorf("socket path %s is too long for a unix socket (TMPDIR is too long)", p)
	}
	return p, nil
}

// MakeDir makes the directory of the socket at path with mode (or sets its
// mode), refusing one that is not a directory of this user's: under a
// shared temporary directory somebody else could have made it first, or
// put a link there.
func MakeDir(path string, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("socket directory %s is not a directory owned by this user", dir)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	return nil
}

// Listen makes the socket's directory (MakeDir with dirMode), replaces a
// socket left there by an earlier listener (the caller knows none is
// listening: it holds the lock of whatever owns the socket) and listens,
// with the socket's mode set to sockMode. Closing the listener removes the
// file.
func Listen(path string, dirMode, sockMode fs.FileMode) (net.Listener, error) {
	if err := MakeDir(path, dirMode); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove the last socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

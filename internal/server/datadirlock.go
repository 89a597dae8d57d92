package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFileName is the file in the data directory a running server holds a
// lock on (flock), so that a second server on the same directory refuses
// to start instead of taking the first one's workspaces for lost ones.
const LockFileName = "server.lock"

// dataDirLock is the lock a server holds on its data directory for as long
// as it runs. The kernel releases it when the process ends, however it
// ends: a lock file left behind by a killed server blocks nothing.
type dataDirLock struct {
	f *os.File
}

// lockDataDir takes the data directory's lock, or says which process holds
// it. The file is opened close-on-exec, so workspace processes the server
// starts never inherit the lock.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another dev8 server (%s): stop that one first, or give this one its own --data-dir", dir, holder(path))
		}
		return nil, fmt.Errorf("lock data dir (%s): %w", path, err)
	}
	// The pid is for the message above; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data dir: write %s: %w", path, err)
	}
	return &dataDirLock{f: f}, nil
}

// flock takes an exclusive lock on f without waiting, retrying when a
// signal interrupts the call.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// holder names the process that holds the lock at path, from the pid it
// wrote there.
func holder(path string) string {
	data, err := os.ReadFile(path)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || perr != nil || pid <= 0 {
		// It has the lock but has not written its pid yet.
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(pid)
}

// release lets the next server start here. The file stays: removing it
// would let a server that opened it just before lock a file no one else
// sees.
func (l *dataDirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
}

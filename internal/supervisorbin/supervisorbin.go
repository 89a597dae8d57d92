// Package supervisorbin carries the small workspace supervisor
// (cmd/dev8-supervisor) inside dev8, so dev8 stays one binary while every
// workspace runs a supervisor that links only internal/supervisor.
//
// `make build` builds cmd/dev8-supervisor (static, CGO_ENABLED=0) into this
// directory as dev8-supervisor, then dev8 with -tags dev8_embed_supervisor,
// which embeds it. Without the tag (go build, go test, go run ./cmd/dev8)
// nothing is embedded, Binary returns nil, and the runtimes fall back to
// running `dev8 supervisor` from the server's own executable.
//
// The server writes the embedded binary to a file once (Extract) and the
// runtimes start that file: the local runtime runs it, the docker runtime
// copies it into every container.
package supervisorbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every extracted supervisor file:
// Prefix + the first 12 hex digits of its SHA-256.
const Prefix = "dev8-supervisor-"

// Binary returns the embedded supervisor executable, or nil when dev8 was
// built without the dev8_embed_supervisor tag. The slice is read-only.
func Binary() []byte { return binary }

// Release tells the kernel the embedded bytes are not needed in memory now.
// They are part of dev8's executable file: reading them (Extract hashes and
// compares them) maps ~9 MB of it into the server's RSS, and those clean
// pages would stay there until memory got short. Release drops them
// (madvise MADV_DONTNEED on the whole pages they fill); a later read maps
// them in again from the file. Safe because nothing writes to them.
func Release() error {
	if len(binary) == 0 {
		return nil
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(binary)))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(binary))) &^ (page - 1)
	if last <= first {
		return nil
	}
	// Only pages that hold nothing but these bytes: the rest of a page
	// shared with other variables must keep its contents.
	whole := binary[first-start : last-start]
	if err := unix.Madvise(whole, unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("supervisor binary: release its pages: %w", err)
	}
	return nil
}

// FileName is the name Extract gives bin: Prefix + its short SHA-256, so
// each version of the supervisor has a file of its own.
func FileName(bin []byte) string {
	sum := sha256.Sum256(bin)
	return Prefix + hex.EncodeToString(sum[:6])
}

// Extract makes sure dir (created 0755 if missing; its parent must exist)
// holds bin as the executable dir/FileName(bin), and returns its path and
// whether it was written now. An intact file from an earlier start (same
// bytes, a regular file, mode 0755) is reused; any other file or link at
// that path is replaced (a directory there is an error). The write is
// atomic: a temporary file in dir, synced, then renamed over the final
// name, so a concurrent start or a crash never leaves a partial executable
// under that name. Older versions (other Prefix files in dir) are removed
// afterwards; processes already running them are not affected.
func Extract(dir string, bin []byte) (path string, written bool, err error) {
	if len(bin) == 0 {
		return "", false, errors.New("supervisor binary: nothing to extract (dev8 was built without the embedded supervisor)")
	}
	name := FileName(bin)
	path = filepath.Join(dir, name)
	if intact(path, bin) {
		return path, false, nil
	}
	// Mkdir, not MkdirAll: dir's parent is the server's data directory,
	// which must not be created here with anything but its own mode.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", false, fmt.Errorf("supervisor binary: create %s: %w", dir, err)
	}
	if err := writeAtomic(path, bin); err != nil {
		return "", false, fmt.Errorf("supervisor binary: write %s: %w", path, err)
	}
	removeOthers(dir, name)
	return path, true, nil
}

// intact reports whether path is a regular 0755 file holding exactly bin.
func intact(path string, bin []byte) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 || fi.Size() != int64(len(bin)) {
		return false
	}
	data, err := os.ReadFile(path)
	return err == nil && bytes.Equal(data, bin)
}

func writeAtomic(path string, bin []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(bin); err != nil {
		return err
	}
	if err = f.Chmod(0o755); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced; a failure here
	// leaves a complete file, which the next start checks anyway.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// removeOthers deletes the other versions' files in dir (not temporary
// files, which may be another server's write in progress). Best effort: a
// file that stays only takes disk space.
func removeOthers(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != keep && strings.HasPrefix(n, Prefix) {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
}

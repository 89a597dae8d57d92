package supervisorbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// HeaderSHA256 carries the hex SHA-256 of the supervisor a server serves
// (Served.ServeHTTP): the workspace's bootstrap checks the bytes it got
// against it (runtime/kubernetes, --kubernetes-supervisor-from server).
const HeaderSHA256 = "X-Dev8-Sha256"

// Platform is the one platform a server serves its supervisor for: the
// one it was built for, static (dev8's releases and `make build` are
// linux/amd64).
const Platform = "linux/amd64"

// Served is a supervisor file a server hands to workspaces that fetch it
// at start. Its SHA-256 is computed at the first request (a server that
// never serves it never reads it), and again when the file is replaced
// (another size or modification time): serving reads the file as it is
// on disk, so the header always describes the bytes sent.
type Served struct {
	path string

	mu    sync.Mutex
	size  int64
	mtime time.Time
	sum   string
}

// NewServed checks that path is a regular file.
func NewServed(path string) (*Served, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("supervisor binary: %s is not a regular file", path)
	}
	return &Served{path: path}, nil
}

// Path is the file served.
func (s *Served) Path() string { return s.path }

// open opens the file and returns it with its size and SHA-256, hashing
// it anew when it changed since the last time.
func (s *Served) open() (*os.File, os.FileInfo, string, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("supervisor binary: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", fmt.Errorf("supervisor binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, "", fmt.Errorf("supervisor binary: %s is not a regular file", s.path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sum == "" || s.size != fi.Size() || !s.mtime.Equal(fi.ModTime()) {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			f.Close()
			return nil, nil, "", fmt.Errorf("supervisor binary: read %s: %w", s.path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, "", fmt.Errorf("supervisor binary: %w", err)
		}
		s.sum, s.size, s.mtime = hex.EncodeToString(h.Sum(nil)), fi.Size(), fi.ModTime()
	}
	return f, fi, s.sum, nil
}

// ErrNotServed is Serve's error before anything was written: the caller
// answers with it (the server's one error writer).
var ErrNotServed = errors.New("the supervisor binary cannot be served")

// Serve streams the supervisor to w with its Content-Length and
// HeaderSHA256 (GET and HEAD). An error is returned, wrapping
// ErrNotServed, only when nothing was written yet.
func (s *Served) Serve(w http.ResponseWriter, r *http.Request) error {
	f, fi, sum, err := s.open()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotServed, err)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set(HeaderSHA256, sum)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// io.Copy from an *os.File to the server's connection is a sendfile.
	_, _ = io.Copy(w, f)
	return nil
}

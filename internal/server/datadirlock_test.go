package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/devserver"
)

// TestDataDirLock: a second server on a data directory in use refuses to
// start, naming the directory and the first server's pid, and touches
// nothing there; once the first stops, the directory is free again.
func TestDataDirLock(t *testing.T) {
	t.Parallel()
	first := devserver.Start(t, devserver.Options{})
	newServer := func() (*server.Server, error) {
		return server.New(t.Context(), server.Config{
			DataDir:    first.DataDir,
			Runtime:    "local",
			BcryptCost: auth.MinBcryptCost,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}
	second, err := newServer()
	if err == nil {
		second.Close()
		t.Fatal("a second server started on a data directory in use")
	}
	for _, want := range []string{first.DataDir, "pid " + strconv.Itoa(os.Getpid()), "--data-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	// The first server still serves.
	resp, err := http.Get(first.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first server's /ready after the refusal: %d", resp.StatusCode)
	}

	first.Stop()
	third, err := newServer()
	if err != nil {
		t.Fatalf("after the first server stopped: %v", err)
	}
	third.Close()
}

// TestDataDirStaleLockFile: the lock file a killed server leaves (with its
// pid in it) does not keep the next one from starting; only a held lock
// does.
func TestDataDirStaleLockFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, server.LockFileName), []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := devserver.Start(t, devserver.Options{DataDir: dir})
	data, err := os.ReadFile(filepath.Join(dir, server.LockFileName))
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want this process's pid", data, err)
	}
	s.Stop()
}

// Package supervisortest holds what the tests of the supervisor's packages
// share. Only tests import it.
package supervisortest

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Logger logs to stderr, at debug level, under go test -v, and nowhere
// otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Script writes an executable shell script named code-server and returns
// its path.
func Script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "code-server")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// StaleSocket leaves a socket file at path with nothing listening, as a
// code-server that was killed does.
func StaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
}

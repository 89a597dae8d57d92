package codeserver

import (
	"os"
	"path/filepath"
	"testing"

	"dev8.dev/dev8/internal/supervisor/supervisortest"
)

func TestRemoveStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	supervisortest.StaleSocket(t, sock)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"unix:" + sock, file, "127.0.0.1:1", "unix:" + filepath.Join(dir, "missing")} {
		if err := removeStaleSocket(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("stale socket still there: %v", err)
	}
	if _, err := os.Lstat(file); err != nil {
		t.Errorf("a regular file was removed: %v", err)
	}
}

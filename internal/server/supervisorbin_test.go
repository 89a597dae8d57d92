package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/supervisorbin"
)

// TestUseEmbeddedSupervisor: with a supervisor embedded, both runtimes get
// the file it is written to (where Config names none), a second start
// reuses it, and a data directory it cannot be written to falls back to
// this executable with a warning; every start says which supervisor runs.
func TestUseEmbeddedSupervisor(t *testing.T) {
	t.Parallel()
	// A stand-in supervisor: it answers `supervisor --help` as the real
	// one does, and nothing else.
	bin := []byte("#!/bin/sh\n[ \"$*\" = 'supervisor --help' ]\n")
	newCfg := func(t *testing.T) (*Config, *bytes.Buffer) {
		var logs bytes.Buffer
		return &Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))}, &logs
	}

	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		cfg, logs := newCfg(t)
		useEmbeddedSupervisor(cfg, bin)
		want := filepath.Join(cfg.DataDir, "bin", supervisorbin.FileName(bin))
		if !slices.Equal(cfg.SupervisorCommand, []string{want, "supervisor"}) || cfg.SupervisorBinary != want {
			t.Fatalf("command %q, binary %q; want %s for both", cfg.SupervisorCommand, cfg.SupervisorBinary, want)
		}
		if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, bin) {
			t.Fatalf("%s: %q, %v", want, got, err)
		}
		if !strings.Contains(logs.String(), `msg="workspace supervisor: the embedded one" path=`+want) || !strings.Contains(logs.String(), "written_now=true") {
			t.Fatalf("log: %s", logs)
		}
		again, logs := newCfg(t)
		again.DataDir = cfg.DataDir
		useEmbeddedSupervisor(again, bin)
		if again.SupervisorBinary != want || !strings.Contains(logs.String(), "written_now=false") {
			t.Fatalf("second start: binary %q, log %s", again.SupervisorBinary, logs)
		}
	})

	t.Run("configured ones win", func(t *testing.T) {
		t.Parallel()
		cfg, _ := newCfg(t)
		cfg.SupervisorCommand = []string{"/opt/sup", "supervisor"}
		useEmbeddedSupervisor(cfg, bin)
		want := filepath.Join(cfg.DataDir, "bin", supervisorbin.FileName(bin))
		if !slices.Equal(cfg.SupervisorCommand, []string{"/opt/sup", "supervisor"}) || cfg.SupervisorBinary != want {
			t.Fatalf("command %q, binary %q", cfg.SupervisorCommand, cfg.SupervisorBinary)
		}

		both, logs := newCfg(t)
		both.SupervisorCommand, both.SupervisorBinary = []string{"/opt/sup", "supervisor"}, "/opt/sup"
		useEmbeddedSupervisor(both, bin)
		if both.SupervisorBinary != "/opt/sup" || !strings.Contains(logs.String(), "as configured") {
			t.Fatalf("binary %q, log %s", both.SupervisorBinary, logs)
		}
		if _, err := os.Stat(filepath.Join(both.DataDir, "bin")); !os.IsNotExist(err) {
			t.Fatalf("a supervisor was written although both are configured: %v", err)
		}
	})

	t.Run("none embedded", func(t *testing.T) {
		t.Parallel()
		cfg, logs := newCfg(t)
		useEmbeddedSupervisor(cfg, nil)
		if cfg.SupervisorCommand != nil || cfg.SupervisorBinary != "" || !strings.Contains(logs.String(), "this executable") {
			t.Fatalf("command %q, binary %q, log %s", cfg.SupervisorCommand, cfg.SupervisorBinary, logs)
		}
	})

	t.Run("cannot run here", func(t *testing.T) {
		t.Parallel()
		cfg, logs := newCfg(t)
		broken := []byte("#!/bin/sh\necho no such luck >&2\nexit 3\n")
		useEmbeddedSupervisor(cfg, broken)
		want := filepath.Join(cfg.DataDir, "bin", supervisorbin.FileName(broken))
		// The local runtime keeps this executable; containers still get
		// the file (whether it is static is checkStatic's question).
		if cfg.SupervisorCommand != nil || cfg.SupervisorBinary != want {
			t.Fatalf("command %q, binary %q; want the default command and %s", cfg.SupervisorCommand, cfg.SupervisorBinary, want)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no such luck") {
			t.Fatalf("log does not say why: %s", logs)
		}
	})

	t.Run("cannot be written", func(t *testing.T) {
		t.Parallel()
		cfg, logs := newCfg(t)
		// <data-dir>/bin is a file: nothing can be written under it, not
		// even by root.
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "bin"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		useEmbeddedSupervisor(cfg, bin)
		if cfg.SupervisorCommand != nil || cfg.SupervisorBinary != "" {
			t.Fatalf("command %q, binary %q; want the defaults (this executable)", cfg.SupervisorCommand, cfg.SupervisorBinary)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), filepath.Join(cfg.DataDir, "bin")) {
			t.Fatalf("log does not warn where it failed: %s", logs)
		}
	})

	// --runtime auto's static check looks at the file containers get.
	t.Run("static check", func(t *testing.T) {
		t.Parallel()
		sh, err := os.ReadFile("/bin/sh")
		if err != nil {
			t.Skip("no /bin/sh")
		}
		cfg, _ := newCfg(t)
		useEmbeddedSupervisor(cfg, sh)
		orig, extracted := checkStatic("/bin/sh"), checkStatic(cfg.SupervisorBinary)
		if (orig == nil) != (extracted == nil) {
			t.Fatalf("checkStatic: /bin/sh %v, its extracted copy %v", orig, extracted)
		}
		if extracted != nil && !strings.Contains(extracted.Error(), cfg.SupervisorBinary) {
			t.Fatalf("checkStatic(%s) = %v: does not name the extracted file", cfg.SupervisorBinary, extracted)
		}
	})
}

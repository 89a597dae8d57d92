package local

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
	"dev8.dev/dev8/internal/testutil/wait"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// newRuntime returns a Runtime over dir whose supervisor is this test binary.
func newRuntime(t *testing.T, dir string, adjust func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		Dir:         dir,
		Command:     []string{testExe(t)},
		ExtraEnv:    []string{envRunSupervisor + "=1", ownerMark, raceEnv},
		StopTimeout: 3 * time.Second,
		Logger:      testLogger(),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func withFakeCodeServer(t *testing.T) func(*Config) {
	exe := testExe(t)
	return func(c *Config) {
		c.CodeServer = exe
		c.ExtraEnv = append(c.ExtraEnv, envFakeCodeServer+"=1")
	}
}

// createStarted creates and starts an environment that is deleted when the
// test ends.
func createStarted(t *testing.T, ctx context.Context, rt *Runtime, spec runtime.Spec) runtime.Instance {
	t.Helper()
	if spec.EnvironmentID == "" {
		spec.EnvironmentID = strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Delete(ctx, spec.EnvironmentID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Start(ctx, spec.EnvironmentID)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func mustState(t *testing.T, rt *Runtime, id string) *state {
	t.Helper()
	st, err := readState(rt.envDir(id))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func identityOf(t *testing.T, pid int) identity {
	t.Helper()
	s, err := readStat(pid)
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	return identity{pid: pid, startTime: s.startTime, bootID: currentBootID}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-code-server")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// loseWorkspace removes a stopped environment's workspace directory, as an
// operator cleaning up the disk would.
func loseWorkspace(_ context.Context, _ runtime.Runtime, inst runtime.Instance) error {
	return os.RemoveAll(inst.WorkspaceDir)
}

func TestContract(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, dir, nil) },
		runtimetest.Options{LoseStorage: loseWorkspace})
}

// TestLostEnvironmentDir: with the whole environment directory gone (state
// file included, as on a new host), the next Create makes it as for a new
// environment and reports the storage as created.
func TestLostEnvironmentDir(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
	root := t.TempDir()
	rt := newRuntime(t, root, nil)
	spec := runtime.Spec{EnvironmentID: "lostdir", Name: "lostdir"}
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, spec.EnvironmentID, "workspace")); err != nil {
		t.Fatal(err)
	}
	// Start alone does not paper over the loss with an empty directory.
	if _, err := rt.Start(ctx, spec.EnvironmentID); err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "workspace directory") {
		t.Fatalf("Start without its workspace directory: %v; want a permanent error naming it", err)
	}
	if err := os.RemoveAll(filepath.Join(root, spec.EnvironmentID)); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Create(ctx, spec)
	if err != nil || !inst.StorageCreated {
		t.Fatalf("Create after the environment directory was lost = %+v, %v; want StorageCreated", inst, err)
	}
	if _, err := rt.Start(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if err := rt.Delete(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
}

func TestContractWithIDE(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, dir, withFakeCodeServer(t)) },
		runtimetest.Options{LoseStorage: loseWorkspace})
}

func TestLayout(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), nil)
	inst := createStarted(t, ctx, rt, runtime.Spec{})
	dir := rt.envDir(inst.EnvironmentID)
	for _, d := range []string{dir, filepath.Join(dir, workspaceDir), filepath.Join(dir, homeDir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	if inst.WorkspaceDir != filepath.Join(dir, workspaceDir) || inst.Ref != dir {
		t.Errorf("instance %+v does not point into %s", inst, dir)
	}
	st := mustState(t, rt, inst.EnvironmentID)
	if st.PID == 0 || st.StartTime == 0 || st.BootID == "" || st.SupervisorAddr == "" {
		t.Errorf("state of a running workspace lacks its process: %+v", st)
	}
	if inst.IDEAddress != "" {
		t.Errorf("IDEAddress %q without code-server", inst.IDEAddress)
	}
	if _, err := os.Stat(filepath.Join(dir, logFile)); err != nil {
		t.Errorf("no supervisor log: %v", err)
	}
}

func TestInvalidID(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), nil)
	for _, id := range []string{"", "..", "../escape", "a/b", ".hidden", strings.Repeat("x", 200)} {
		_, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id})
		if err == nil || !runtime.IsPermanent(err) {
			t.Errorf("Create(%q) = %v; want a permanent error", id, err)
		}
		if _, err := rt.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Inspect(%q) = %v; want ErrNotFound", id, err)
		}
		if err := rt.Delete(ctx, id); err != nil {
			t.Errorf("Delete(%q) = %v", id, err)
		}
	}
}

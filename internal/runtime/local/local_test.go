package local

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
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

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
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

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
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
	ctx := testCtx(t, time.Minute)
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
	ctx := testCtx(t, time.Minute)
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
	ctx := testCtx(t, time.Minute)
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

// TestStopKillsProcessTree starts a code-server stand-in that spawns a
// child, a child that ignores SIGTERM, and one that ignores SIGTERM in a
// session of its own; Stop must leave none of them.
func TestStopKillsProcessTree(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	script := writeScript(t, `
sleep 300 &
c=$!
sh -c 'trap "" TERM; exec sleep 301' &
s=$!
setsid sh -c 'trap "" TERM; exec sleep 302' &
e=$!
echo "$$ $c $s $e" > pids.tmp && mv pids.tmp pids
exec sleep 303
`)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.CodeServer = script
		c.StopTimeout = 2 * time.Second
	})
	inst := createStarted(t, ctx, rt, runtime.Spec{})
	pidsFile := filepath.Join(inst.WorkspaceDir, "pids")
	waitFor(t, ctx, "the stand-in's pid file", func() bool { _, err := os.Stat(pidsFile); return err == nil })
	data, err := os.ReadFile(pidsFile)
	if err != nil {
		t.Fatal(err)
	}
	sup := mustState(t, rt, inst.EnvironmentID).identity()
	tree := []identity{sup}
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		tree = append(tree, identityOf(t, pid))
	}
	// setsid(1) leaves the session a moment after the shell wrote its pid.
	waitFor(t, ctx, "the setsid child to leave the supervisor's session", func() bool {
		s, err := readStat(tree[4].pid)
		return err == nil && s.session != sup.pid
	})

	if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	for i, id := range tree {
		if id.alive() {
			t.Errorf("process %d (pid %d) survived Stop", i, id.pid)
		}
	}
	// Orphans that died may linger as zombies until init reaps them; those
	// are gone for our purposes, so look for live members only.
	procs, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for pid, s := range procs {
		if s.dead() {
			continue
		}
		if s.session == sup.pid {
			t.Errorf("pid %d is still in the workspace's session", pid)
		}
		if s.pgrp == sup.pid || s.pgrp == tree[1].pid {
			t.Errorf("pid %d is still in process group %d", pid, s.pgrp)
		}
	}
}

func TestExitNotifier(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	// A helper in code-server's group, and one in a session of its own (as
	// code-server's terminals are).
	script := writeScript(t, `
sleep 300 &
c=$!
setsid sleep 302 &
echo "$$ $c $!" > pids.tmp && mv pids.tmp pids
exec sleep 301
`)
	rt := newRuntime(t, t.TempDir(), func(c *Config) { c.CodeServer = script })
	exits := make(chan string, 1)
	rt.NotifyExits(exits)
	inst := createStarted(t, ctx, rt, runtime.Spec{})
	id := inst.EnvironmentID
	pidsFile := filepath.Join(inst.WorkspaceDir, "pids")
	waitFor(t, ctx, "the stand-in's pid file", func() bool { _, err := os.Stat(pidsFile); return err == nil })
	data, err := os.ReadFile(pidsFile)
	if err != nil {
		t.Fatal(err)
	}
	var helpers []identity
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		helpers = append(helpers, identityOf(t, pid))
	}

	sup := mustState(t, rt, id).identity()
	if err := syscall.Kill(sup.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-exits:
		if got != id {
			t.Fatalf("exit notified for %q, want %q", got, id)
		}
	case <-ctx.Done():
		t.Fatal("no exit notification after the supervisor was killed")
	}
	got, err := rt.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != runtime.StateStopped || got.ExitReason != "workspace process exited: signal: killed" {
		t.Fatalf("Inspect after SIGKILL = %+v; want stopped with the reason", got)
	}
	// What the dead supervisor left behind is killed with it.
	waitFor(t, ctx, "the supervisor's helpers to be killed", func() bool {
		for _, h := range helpers {
			if h.alive() {
				return false
			}
		}
		return true
	})
	if list, err := rt.List(ctx); err != nil || len(list) != 1 || list[0].ExitReason == "" {
		t.Fatalf("List after SIGKILL = %+v, %v; want the instance with its exit reason", list, err)
	}

	// A requested Stop clears the reason; a new Start runs again.
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := rt.Inspect(ctx, id); err != nil || got.State != runtime.StateStopped || got.ExitReason != "" {
		t.Fatalf("Inspect after Stop = %+v, %v; want stopped without a reason", got, err)
	}
	if got, err := rt.Start(ctx, id); err != nil || got.State != runtime.StateRunning {
		t.Fatalf("Start after a crash = %+v, %v", got, err)
	}
	select {
	case got := <-exits:
		t.Fatalf("exit notified for %s without an exit", got)
	default:
	}
}

func TestExitNotifierNeverBlocks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), nil)
	// Notifications go to each channel in turn: if the send to the full one
	// blocked, the second would never get its notification.
	rt.NotifyExits(make(chan string)) // unbuffered, never read
	second := make(chan string, 1)
	rt.NotifyExits(second)
	inst := createStarted(t, ctx, rt, runtime.Spec{})
	sup := mustState(t, rt, inst.EnvironmentID).identity()
	if err := syscall.Kill(sup.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second:
	case <-ctx.Done():
		t.Fatal("a full channel blocked the notification of the next one")
	}
}

// TestAdoptionIdentity checks that a state file is matched to a process by
// pid, start time and boot, never by pid alone.
func TestAdoptionIdentity(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	dir := t.TempDir()
	rt := newRuntime(t, dir, nil)
	const id = "adopt"
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Delete(context.Background(), id) })
	set := func(ident identity) {
		t.Helper()
		st := mustState(t, rt, id)
		st.PID, st.StartTime, st.BootID = ident.pid, ident.startTime, ident.bootID
		if err := writeState(rt.envDir(id), st); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(rt *Runtime, want runtime.State) runtime.Instance {
		t.Helper()
		got, err := rt.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want {
			t.Fatalf("Inspect = %+v, want %s", got, want)
		}
		return got
	}

	// The test process itself: alive, but not the process recorded.
	self := identityOf(t, os.Getpid())
	for _, wrong := range []identity{
		{pid: self.pid, startTime: self.startTime + 1, bootID: self.bootID},
		{pid: self.pid, startTime: self.startTime, bootID: "another-boot"},
	} {
		set(wrong)
		fresh := newRuntime(t, dir, nil)
		if got := expect(fresh, runtime.StateStopped); got.ExitReason == "" {
			t.Errorf("a recorded process that is gone has no exit reason: %+v", got)
		}
		// Stopping it must not touch the unrelated process (us).
		if err := fresh.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	// An unrelated live process recorded with its real identity is adopted:
	// running, and Stop kills it though it is not the runtime's child.
	cmd := exec.Command("sleep", "60")
	cmd.Env = []string{ownerMark}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-waited })
	set(identityOf(t, cmd.Process.Pid))
	adopter := newRuntime(t, dir, nil)
	expect(adopter, runtime.StateRunning)
	if err := adopter.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect(adopter, runtime.StateStopped)
	select {
	case err := <-waited:
		waited <- err
	case <-ctx.Done():
		t.Fatal("the adopted process survived Stop")
	}

	// An adopted process that dies on its own is noticed and notified.
	cmd2 := exec.Command("sleep", "60")
	cmd2.Env = []string{ownerMark}
	cmd2.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	waited2 := make(chan error, 1)
	go func() { waited2 <- cmd2.Wait() }()
	t.Cleanup(func() { _ = cmd2.Process.Kill(); <-waited2 })
	set(identityOf(t, cmd2.Process.Pid))
	watcher := newRuntime(t, dir, nil)
	exits := make(chan string, 1)
	watcher.NotifyExits(exits)
	expect(watcher, runtime.StateRunning)
	_ = cmd2.Process.Kill()
	err := <-waited2
	waited2 <- err
	select {
	case got := <-exits:
		if got != id {
			t.Fatalf("exit notified for %q", got)
		}
	case <-ctx.Done():
		t.Fatal("no exit notification for an adopted process")
	}
	if got := expect(watcher, runtime.StateStopped); !strings.Contains(got.ExitReason, "adopted") {
		t.Errorf("exit reason %q", got.ExitReason)
	}
}

// TestEnv is not parallel: it sets a server variable that must not reach
// the workspace.
func TestEnv(t *testing.T) {
	t.Setenv("DEV8_TEST_SERVER_SECRET", "hunter2")
	t.Setenv("LC_TIME", "C.UTF-8")
	ctx := testCtx(t, time.Minute)
	exe := testExe(t)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.Command = []string{"/bin/sh", "-c", `env > "$DEV8_WORKSPACE_DIR/env.txt" && exec "$0"`, exe}
		c.ExtraEnv = append(c.ExtraEnv, "EXTRA=from-config")
	})
	inst := createStarted(t, ctx, rt, runtime.Spec{Env: map[string]string{
		"FOO":                  "bar baz",
		"DEV8_ENVIRONMENT_ID":  "spoofed",
		"DEV8_SUPERVISOR_ADDR": "127.0.0.1:1",
		"HOME":                 "/nope",
	}})
	data, err := os.ReadFile(filepath.Join(inst.WorkspaceDir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	dir := rt.envDir(inst.EnvironmentID)
	for k, want := range map[string]string{
		"FOO":                      "bar baz",
		"EXTRA":                    "from-config",
		"LC_TIME":                  "C.UTF-8",
		agentapi.EnvEnvironmentID:  inst.EnvironmentID,
		agentapi.EnvWorkspaceDir:   inst.WorkspaceDir,
		agentapi.EnvSupervisorAddr: mustState(t, rt, inst.EnvironmentID).SupervisorAddr,
		"HOME":                     filepath.Join(dir, homeDir),
		"PATH":                     os.Getenv("PATH"),
	} {
		if env[k] != want {
			t.Errorf("workspace sees %s=%q, want %q", k, env[k], want)
		}
	}
	if v, ok := env["DEV8_TEST_SERVER_SECRET"]; ok {
		t.Errorf("a server variable leaked into the workspace: %q", v)
	}
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.Command = []string{"/bin/sh", "-c", "echo hello-from-log; echo $$ > pid; exec sleep 60"}
		c.StartTimeout = time.Second
	})
	const id = "never-healthy"
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Delete(context.Background(), id) })
	_, err := rt.Start(ctx, id)
	if err == nil {
		t.Fatal("Start of a command that never becomes healthy succeeded")
	}
	if !strings.Contains(err.Error(), "not healthy") || !strings.Contains(err.Error(), "hello-from-log") {
		t.Errorf("error lacks the cause or the log tail: %v", err)
	}
	got, err := rt.Inspect(ctx, id)
	if err != nil || got.State != runtime.StateStopped {
		t.Fatalf("Inspect after a failed start = %+v, %v; want stopped", got, err)
	}
	data, err := os.ReadFile(filepath.Join(got.WorkspaceDir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if s, err := readStat(pid); err == nil && s.session == pid && !s.dead() {
		t.Errorf("the process that never became healthy (pid %d) is still running", pid)
	}
}

func TestStartExits(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.Command = []string{"/bin/sh", "-c", "echo boom >&2; exit 3"}
	})
	const id = "exits"
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Delete(context.Background(), id) })
	began := time.Now()
	_, err := rt.Start(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Start = %v; want the exit status and the log tail", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Start took %v to notice an exit", d)
	}
}

func TestStartMissingCommand(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), func(c *Config) { c.Command = []string{"/nonexistent/dev8"} })
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "x"); err == nil || !runtime.IsPermanent(err) {
		t.Fatalf("Start with a missing command = %v; want a permanent error", err)
	}
}

func supervisorStatus(t *testing.T, ctx context.Context, addr string) (agentapi.Status, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return agentapi.Status{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return agentapi.Status{}, err
	}
	defer resp.Body.Close()
	var st agentapi.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func healthz(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status"`) {
		return errors.New("healthz: " + resp.Status + " " + string(body))
	}
	return nil
}

// checkIDE waits for code-server to answer on the instance's IDEAddress and
// the supervisor to report it running, stops the instance and checks
// code-server went with it.
func checkIDE(t *testing.T, ctx context.Context, rt *Runtime, inst runtime.Instance) {
	t.Helper()
	if inst.IDEAddress == "" || !strings.HasPrefix(inst.IDEAddress, "127.0.0.1:") {
		t.Fatalf("IDEAddress %q, want a loopback address", inst.IDEAddress)
	}
	waitFor(t, ctx, "code-server's /healthz", func() bool { return healthz(ctx, inst.IDEAddress) == nil })
	addr := mustState(t, rt, inst.EnvironmentID).SupervisorAddr
	var cs agentapi.CodeServerStatus
	waitFor(t, ctx, "the supervisor to report code-server running", func() bool {
		st, err := supervisorStatus(t, ctx, addr)
		cs = st.CodeServer
		return err == nil && cs.State == agentapi.CodeServerRunning && cs.LastHealthyAt != nil
	})
	csProc := identityOf(t, cs.PID)
	if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if csProc.alive() {
		t.Errorf("code-server (pid %d) survived Stop", csProc.pid)
	}
	if c, err := net.DialTimeout("tcp", inst.IDEAddress, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after Stop", inst.IDEAddress)
	}
}

func TestIDEFake(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), withFakeCodeServer(t))
	checkIDE(t, ctx, rt, createStarted(t, ctx, rt, runtime.Spec{}))
}

// TestCodeServer runs the real code-server (DEV8_CODE_SERVER; see
// scripts/install-code-server.sh).
func TestCodeServer(t *testing.T) {
	t.Parallel()
	cs := os.Getenv(agentapi.EnvCodeServer)
	if cs == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but DEV8_CODE_SERVER is not: run scripts/install-code-server.sh")
		}
		t.Skip("DEV8_CODE_SERVER is not set (scripts/install-code-server.sh installs code-server)")
	}
	ctx := testCtx(t, 2*time.Minute)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.CodeServer = cs
		c.StopTimeout = 10 * time.Second
	})
	inst := createStarted(t, ctx, rt, runtime.Spec{})
	checkIDE(t, ctx, rt, inst)
	// code-server kept its data in the workspace's home, not the server's.
	if _, err := os.Stat(filepath.Join(rt.envDir(inst.EnvironmentID), homeDir, ".local", "share", "code-server")); err != nil {
		t.Errorf("code-server's user data is not under the workspace's home: %v", err)
	}
}

func TestFindCodeServer(t *testing.T) {
	t.Setenv(agentapi.EnvCodeServer, "/opt/code-server/bin/code-server")
	if got := FindCodeServer(); got != "/opt/code-server/bin/code-server" {
		t.Errorf("FindCodeServer() = %q with %s set", got, agentapi.EnvCodeServer)
	}
	t.Setenv(agentapi.EnvCodeServer, "")
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "code-server"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	if got := FindCodeServer(); got != filepath.Join(bin, "code-server") {
		t.Errorf("FindCodeServer() = %q, want the one on PATH", got)
	}
	t.Setenv("PATH", t.TempDir())
	if got := FindCodeServer(); got != "" {
		t.Errorf("FindCodeServer() = %q with none installed", got)
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses must not shift fields.
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := parseStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, ppid: 1, pgrp: 4242, session: 4242, state: 'S', startTime: 987654}
	if s != want {
		t.Fatalf("parseStat = %+v, want %+v", s, want)
	}
	if _, err := parseStat(1, []byte("1 (x) S 1")); err == nil {
		t.Error("parseStat accepted a truncated line")
	}
}

// TestSweepsStrays: a server killed between starting a supervisor and
// recording its pid leaves a process no state file names. Start, Stop and
// Delete must all find and end it, or it would run forever.
func TestSweepsStrays(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"start", "stop", "delete"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t, time.Minute)
			dir := t.TempDir()
			rt := newRuntime(t, dir, nil)
			id := "env_stray" + op
			if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rt.Delete(context.Background(), id) })
			stray := exec.Command("sleep", "300")
			stray.Env = append(os.Environ(), ownerMark,
				"DEV8_ENVIRONMENT_ID="+id,
				"DEV8_WORKSPACE_DIR="+filepath.Join(dir, id, workspaceDir))
			if err := stray.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = stray.Wait(); close(exited) }()
			// A process of another environment must survive the sweep.
			bystander := exec.Command("sleep", "300")
			bystander.Env = append(os.Environ(), ownerMark,
				"DEV8_ENVIRONMENT_ID=env_other",
				"DEV8_WORKSPACE_DIR="+filepath.Join(dir, "env_other", workspaceDir))
			if err := bystander.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })

			var err error
			switch op {
			case "start":
				_, err = rt.Start(ctx, id)
			case "stop":
				err = rt.Stop(ctx, id)
			case "delete":
				err = rt.Delete(ctx, id)
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-ctx.Done():
				t.Fatalf("%s left the stray process running", op)
			}
			if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
				t.Fatalf("%s killed another environment's process: %v", op, err)
			}
		})
	}
}

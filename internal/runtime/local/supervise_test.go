package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

func TestExitNotifier(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
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
	wait.Eventually(ctx, t, "the stand-in's pid file", func() bool { _, err := os.Stat(pidsFile); return err == nil })
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
	wait.Eventually(ctx, t, "the supervisor's helpers to be killed", func() bool {
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
	ctx := wait.Context(t, time.Minute)
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
	ctx := wait.Context(t, time.Minute)
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

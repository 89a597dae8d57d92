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

// TestStopKillsProcessTree starts a code-server stand-in that spawns a
// child, a child that ignores SIGTERM, and one that ignores SIGTERM in a
// session of its own; Stop must leave none of them.
func TestStopKillsProcessTree(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
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
	wait.Eventually(ctx, t, "the stand-in's pid file", func() bool { _, err := os.Stat(pidsFile); return err == nil })
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
	wait.Eventually(ctx, t, "the setsid child to leave the supervisor's session", func() bool {
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

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
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
	ctx := wait.Context(t, time.Minute)
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
	ctx := wait.Context(t, time.Minute)
	rt := newRuntime(t, t.TempDir(), func(c *Config) { c.Command = []string{"/nonexistent/dev8"} })
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "x"); err == nil || !runtime.IsPermanent(err) {
		t.Fatalf("Start with a missing command = %v; want a permanent error", err)
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
			ctx := wait.Context(t, time.Minute)
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

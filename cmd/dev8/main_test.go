package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wait"
)

// These tests drive the real dev8 binary as a user would: built once, run as
// a separate process, killed with SIGKILL, restarted.

var dev8Binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dev8-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dev8Binary = filepath.Join(dir, "dev8")
	build := exec.Command("go", "build", "-o", dev8Binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build dev8:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(dev8Binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "dev8 ") {
		t.Fatalf("dev8 version = %q, %v", out, err)
	}
}

// startServer runs dev8 server on a free loopback port and returns once it
// listens. --runtime local: the tests below look for workspaces' processes.
func startServer(t *testing.T, ctx context.Context, dataDir string, env ...string) *serverproc.Process {
	t.Helper()
	return serverproc.Start(t, ctx, dev8Binary, serverproc.Options{
		Args: []string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--runtime", "local",
			"--reaper-interval", "1s", "--resync-interval", "200ms", "--code-server", "off"},
		Env: env,
		Dir: dataDir,
	})
}

func call(t *testing.T, ctx context.Context, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

type environment struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	StatusReason *string `json:"status_reason"`
}

// settle polls until no environment is in a transitional status. The
// server is another process; its API is the only way to watch it.
func settle(t *testing.T, ctx context.Context, url, token string) []environment {
	t.Helper()
	var envs []environment
	wait.Succeeds(ctx, t, "the environments to settle", func() error {
		var list struct{ Environments []environment }
		call(t, ctx, "GET", url+"/api/v1/environments?limit=100", token, nil, &list)
		for _, e := range list.Environments {
			switch e.Status {
			case "CREATING", "STARTING", "STOPPING", "DELETING":
				return fmt.Errorf("%+v", list.Environments)
			}
		}
		envs = list.Environments
		return nil
	})
	return envs
}

// workspaceProcesses maps environment id → pids of processes that carry it
// in their environment (the supervisor and everything it started).
func workspaceProcesses(t *testing.T, dataDir string) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || bytes.Contains(stat, []byte(") Z ")) {
			continue
		}
		var id string
		var ours bool
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("DEV8_ENVIRONMENT_ID=")); ok {
				id = string(v)
			}
			if bytes.HasPrefix(kv, []byte("DEV8_WORKSPACE_DIR="+dataDir)) {
				ours = true
			}
		}
		if id != "" && ours {
			out[id] = append(out[id], pid)
		}
	}
	return out
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := t.TempDir()

	srv := startServer(t, ctx, dataDir)
	if code := call(t, ctx, "POST", srv.URL+"/api/v1/auth/signup", "", map[string]string{"email": "ada@example.com", "password": "correct horse"}, nil); code != 201 {
		t.Fatalf("signup = %d", code)
	}
	var login struct{ Token string }
	call(t, ctx, "POST", srv.URL+"/api/v1/auth/login", "", map[string]string{"email": "ada@example.com", "password": "correct horse"}, &login)

	const n = 4
	ids := map[string]bool{}
	for i := range n {
		var out struct{ Environment environment }
		if code := call(t, ctx, "POST", srv.URL+"/api/v1/environments", login.Token, map[string]any{"name": fmt.Sprintf("env-%d", i)}, &out); code != 201 {
			t.Fatalf("create = %d", code)
		}
		ids[out.Environment.ID] = true
	}
	// Killed while the environments are being created.
	srv.Kill()

	srv = startServer(t, ctx, dataDir)
	envs := settle(t, ctx, srv.URL, login.Token)
	if len(envs) != n {
		t.Fatalf("after restart: %d environments, want %d", len(envs), n)
	}
	for _, e := range envs {
		if e.Status != "RUNNING" && (e.Status != "ERROR" || e.StatusReason == nil) {
			t.Fatalf("environment %s converged to %s without a reason", e.ID, e.Status)
		}
	}
	procs := workspaceProcesses(t, dataDir)
	for id := range procs {
		if !ids[id] {
			t.Fatalf("orphan workspace process for %s", id)
		}
	}
	for _, e := range envs {
		if e.Status == "RUNNING" && len(procs[e.ID]) == 0 {
			t.Fatalf("RUNNING environment %s has no process", e.ID)
		}
	}

	// A graceful stop leaves workspaces running, and the next server adopts
	// them without restarting them.
	before := workspaceProcesses(t, dataDir)
	if err := srv.Terminate(); err != nil {
		t.Fatalf("SIGTERM: server exited with %v", err)
	}
	srv = startServer(t, ctx, dataDir)
	envs = settle(t, ctx, srv.URL, login.Token)
	after := workspaceProcesses(t, dataDir)
	for _, e := range envs {
		if e.Status != "RUNNING" {
			continue
		}
		if fmt.Sprint(before[e.ID]) != fmt.Sprint(after[e.ID]) {
			t.Fatalf("environment %s processes changed across a graceful restart: %v → %v", e.ID, before[e.ID], after[e.ID])
		}
	}

	for _, e := range envs {
		if code := call(t, ctx, "DELETE", srv.URL+"/api/v1/environments/"+e.ID, login.Token, nil, nil); code != 200 {
			t.Fatalf("delete = %d", code)
		}
	}
	if left := settle(t, ctx, srv.URL, login.Token); len(left) != 0 {
		t.Fatalf("after delete: %+v", left)
	}
	if procs := workspaceProcesses(t, dataDir); len(procs) != 0 {
		t.Fatalf("processes outlived their deleted environments: %v", procs)
	}
	if err := srv.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestZeroConfig runs the server exactly as the README says, with only HOME
// pointing somewhere fresh: no flags, no variables.
func TestZeroConfig(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, dev8Binary, "server", "--addr", "127.0.0.1:0")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = home
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	var url string
	sawRuntime := false
	for sc.Scan() {
		// The start-up lines say which runtime runs the workspaces (docker
		// or local, depending on this machine) and why, before it serves.
		if strings.Contains(sc.Text(), `msg="workspace runtime: `) && strings.Contains(sc.Text(), " why=") {
			sawRuntime = true
		}
		if strings.Contains(sc.Text(), `msg="dev8 server ready"`) && !sawRuntime {
			t.Errorf("the server was ready before it said which runtime it uses")
		}
		if _, addr, ok := strings.Cut(sc.Text(), "msg=listening addr="); ok {
			url = "http://" + addr
			break
		}
	}
	if url == "" {
		t.Fatal("server did not log its address")
	}
	if !sawRuntime {
		t.Error("the server did not say which runtime it uses, and why, before it listened")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	// Apart from the log, standard output says what to open.
	ready, err := bufio.NewReader(stdout).ReadString('\n')
	if want := "Dev8 is ready: open " + url + "\n"; ready != want {
		t.Errorf("standard output %q (%v), want %q", ready, err, want)
	}
	var health map[string]string
	if code := call(t, ctx, "GET", url+"/health", "", nil, &health); code != 200 || health["status"] != "healthy" {
		t.Fatalf("/health = %d %v", code, health)
	}
	if _, err := os.Stat(filepath.Join(home, ".dev8", "dev8.db")); err != nil {
		t.Fatalf("default data dir not used: %v", err)
	}
}

// TestDotEnv: a .env file in the working directory configures the server.
func TestDotEnv(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "from-dotenv")
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("DEV8_DATA_DIR="+dataDir+"\nDEV8_ADDR=127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, dev8Binary, "server")
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=listening") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if _, err := os.Stat(filepath.Join(dataDir, "dev8.db")); err != nil {
		t.Fatalf(".env DEV8_DATA_DIR not used: %v", err)
	}
}

// TestDataDirInUse: a second dev8 server on a data directory another one
// serves exits at once, naming the directory and the other's pid, and the
// first goes on; once the first is killed (its lock file left behind), a
// new one starts there.
func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	first := startServer(t, ctx, dataDir)

	cmd := exec.CommandContext(ctx, dev8Binary, "server", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--runtime", "local", "--code-server", "off")
	cmd.Dir = dataDir
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("second server on %s: %v, want exit status 1\n%s", dataDir, err, out)
	}
	want := fmt.Sprintf("dev8: data directory %s is in use by another dev8 server (pid %d)", dataDir, first.Pid())
	if !strings.Contains(string(out), want) {
		t.Fatalf("second server said:\n%s\nwant %q", out, want)
	}
	if code := call(t, ctx, "GET", first.URL+"/ready", "", nil, nil); code != 200 {
		t.Fatalf("first server's /ready after the refusal = %d", code)
	}

	first.Kill()
	if _, err := os.Stat(filepath.Join(dataDir, "server.lock")); err != nil {
		t.Fatalf("the killed server's lock file: %v", err)
	}
	next := startServer(t, ctx, dataDir)
	if code := call(t, ctx, "GET", next.URL+"/ready", "", nil, nil); code != 200 {
		t.Fatalf("/ready of the server after the killed one = %d", code)
	}
	if err := next.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/internal/testutil/wsssh"
	"dev8.dev/dev8/sdk"
)

// TestEmbeddedSupervisor builds dev8 as make build does (this small
// supervisor first, then dev8 with -tags dev8_embed_supervisor embedding
// it; through -overlay, so the source tree is not written) and checks that
// `dev8 server` writes the supervisor to <data-dir>/bin and that a
// workspace on the local runtime really runs it: the supervisor process's
// executable is that file, and SSH through the tunnel and the supervisor's
// status endpoint work. A restarted server reuses the file.
func TestEmbeddedSupervisor(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// Building dev8 with a cold cache on a busy 2-core machine takes
	// minutes; the rest is bounded on its own.
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	small, dev8 := buildEmbedded(t, bctx, tmp)
	bcancel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	extracted := filepath.Join(dataDir, "bin", supervisorbin.FileName(want))

	srv := startServer(t, ctx, dev8, dataDir, "127.0.0.1:0")
	if srv.supervisor.Path != extracted || !srv.supervisor.WrittenNow {
		t.Fatalf("server logged supervisor %+v, want %s written now", srv.supervisor, extracted)
	}
	if got, err := os.ReadFile(extracted); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s does not hold the small supervisor (%v)", extracted, err)
	}

	c := sdk.New(srv.URL, "")
	if _, err := c.Signup(ctx, "ada@example.com", "correct horse battery", "Ada"); err != nil {
		t.Fatal(err)
	}
	token, _, err := c.Login(ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	c = sdk.New(srv.URL, token)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "small"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}

	var st struct {
		PID            int    `json:"pid"`
		SupervisorAddr string `json:"supervisorAddr"`
	}
	data, err := os.ReadFile(filepath.Join(dataDir, "workspaces", env.ID, "state.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil || st.PID == 0 || st.SupervisorAddr == "" {
		t.Fatalf("state.json: %+v, %v", st, err)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID)); err != nil || exe != extracted {
		t.Fatalf("supervisor pid %d runs %q (%v), want %s", st.PID, exe, err, extracted)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	if got := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"); len(got) != 2 || got[1] != "supervisor" {
		t.Fatalf("supervisor argv %q, want [%s supervisor]", got, extracted)
	}

	// The supervisor's own status endpoint.
	status := supervisorStatus(t, ctx, st.SupervisorAddr)
	if status.EnvironmentID != env.ID || status.PID != st.PID {
		t.Fatalf("GET /status = %+v, want environment %s, pid %d", status, env.ID, st.PID)
	}

	// SSH through the server and the supervisor's tunnel: the command's
	// parent is the small supervisor.
	out := wsssh.Run(t, ctx, c, env.ID, "readlink /proc/$PPID/exe")
	if strings.TrimSpace(out) != extracted {
		t.Fatalf("SSH command's parent runs %q, want %s", out, extracted)
	}

	// A restarted server finds the file intact and reuses it; the
	// workspace, adopted, keeps running the same process. Same address:
	// the supervisor redials the URL it was given.
	if err := srv.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	srv = startServer(t, ctx, dev8, dataDir, strings.TrimPrefix(srv.URL, "http://"))
	if srv.supervisor.Path != extracted || srv.supervisor.WrittenNow {
		t.Fatalf("restarted server logged supervisor %+v, want %s reused", srv.supervisor, extracted)
	}
	c = sdk.New(srv.URL, token)
	if _, err := c.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	// The supervisor redials the new server on its own schedule; only it
	// can say when (tunnelConnects counts its tunnels).
	wait.Eventually(ctx, t, "the supervisor to reconnect to the restarted server", func() bool {
		return supervisorStatus(t, ctx, st.SupervisorAddr).TunnelConnects > status.TunnelConnects
	})
	if out := wsssh.Run(t, ctx, c, env.ID, "echo $PPID"); strings.TrimSpace(out) != fmt.Sprint(st.PID) {
		t.Fatalf("after the restart SSH runs under pid %q, want the adopted supervisor %d", out, st.PID)
	}
	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// buildEmbedded builds this command (static, as make build does) and dev8
// embedding it into dir, and returns their paths.
func buildEmbedded(t *testing.T, ctx context.Context, dir string) (small, dev8 string) {
	t.Helper()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	small, dev8 = filepath.Join(dir, "dev8-supervisor"), filepath.Join(dir, "dev8")
	overlay := filepath.Join(dir, "overlay.json")
	data, _ := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(root, "internal", "supervisorbin", "dev8-supervisor"): small,
	}})
	if err := os.WriteFile(overlay, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"build", "-trimpath", "-ldflags", "-s -w", "-o", small, "./cmd/dev8-supervisor"},
		{"build", "-trimpath", "-tags", "dev8_embed_supervisor", "-overlay", overlay, "-o", dev8, "./cmd/dev8"},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return small, dev8
}

// server is a running `dev8 server` process and the supervisor it said it
// uses.
type server struct {
	*serverproc.Process
	supervisor struct {
		Path       string `json:"path"`
		WrittenNow bool   `json:"written_now"`
	}
}

// startServer runs dev8 server (local runtime, no IDE) on addr and returns once it listens, with the supervisor it said it uses.
func startServer(t *testing.T, ctx context.Context, dev8, dataDir, addr string) *server {
	t.Helper()
	s := &server{}
	s.Process = serverproc.Start(t, ctx, dev8, serverproc.Options{
		Args: []string{"--addr", addr, "--data-dir", dataDir, "--runtime", "local", "--code-server", "off"},
		Dir:  dataDir,
		OnLog: func(msg string, line []byte) {
			if msg == "workspace supervisor: the embedded one" {
				_ = json.Unmarshal(line, &s.supervisor)
			}
		},
	})
	return s
}

type status struct {
	EnvironmentID  string `json:"environmentId"`
	PID            int    `json:"pid"`
	TunnelConnects int    `json:"tunnelConnects"`
}

// supervisorStatus is GET /status of the supervisor at addr.
func supervisorStatus(t *testing.T, ctx context.Context, addr string) status {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /status = %d, %v", resp.StatusCode, err)
	}
	return st
}

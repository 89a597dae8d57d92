package local

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

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

// dialIDE connects to code-server's address: "unix:/path" or host:port.
func dialIDE(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return d.DialContext(ctx, "unix", p)
	}
	return d.DialContext(ctx, "tcp", addr)
}

func healthz(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://code-server/healthz", nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dialIDE(ctx, addr) }}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
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
	// A socket only the server's user reaches, never a port: code-server
	// has no password.
	sock, ok := strings.CutPrefix(inst.IDEAddress, "unix:")
	if !ok {
		t.Fatalf("IDEAddress %q, want a unix socket", inst.IDEAddress)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("code-server's socket directory %s: %v, %v; want 0700", filepath.Dir(sock), fi.Mode(), err)
	}
	wait.Eventually(ctx, t, "code-server's /healthz", func() bool { return healthz(ctx, inst.IDEAddress) == nil })
	addr := mustState(t, rt, inst.EnvironmentID).SupervisorAddr
	var cs agentapi.CodeServerStatus
	wait.Eventually(ctx, t, "the supervisor to report code-server running", func() bool {
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
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if c, err := dialIDE(dctx, inst.IDEAddress); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after Stop", inst.IDEAddress)
	}
}

func TestIDEFake(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
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
	ctx := wait.Context(t, 2*time.Minute)
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

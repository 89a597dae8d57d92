package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// dialWS opens one of the environment's websocket endpoints as its owner.
func (ts *testServer) dialWS(t *testing.T, token, path string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.Dial(ts.ctx, strings.Replace(ts.url, "http", "ws", 1)+path, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if ws != nil {
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// sshClient connects an SSH client through the server to the workspace.
func (ts *testServer) sshClient(t *testing.T, token, envID string) *ssh.Client {
	t.Helper()
	ws, _, err := ts.dialWS(t, token, "/api/v1/environments/"+envID+"/ssh")
	if err != nil {
		t.Fatalf("dial ssh websocket: %v", err)
	}
	conn := websocket.NetConn(ts.ctx, ws, websocket.MessageBinary)
	c, chans, reqs, err := ssh.NewClientConn(conn, "dev8", &ssh.ClientConfig{
		User: "dev8",
		// The tunnel is authenticated by the server; the workspace's host
		// key is not what protects this connection.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         30 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh handshake: %v", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	t.Cleanup(func() { client.Close() })
	return client
}

func TestWorkspaceAccess(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("bob@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "reach"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)

	t.Run("ssh exec", func(t *testing.T) {
		client := ts.sshClient(t, token, env.ID)
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var out bytes.Buffer
		sess.Stdout = &out
		err = sess.Run("sh -c 'echo hi; pwd; exit 3'")
		var exit *ssh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
			t.Fatalf("exit = %v, want status 3", err)
		}
		if out.String() != "hi\n"+dir+"\n" {
			t.Fatalf("output = %q, want hi and the workspace dir %s", out.String(), dir)
		}
	})

	t.Run("port forward", func(t *testing.T) {
		// A server listening inside the workspace (for the local runtime,
		// on this machine's loopback).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		ws, _, err := ts.dialWS(t, token, "/api/v1/environments/"+env.ID+"/port-forward?port="+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		conn := websocket.NetConn(ts.ctx, ws, websocket.MessageBinary)
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo through port-forward = %q, %v", buf, err)
		}
		// Nothing listening: a clear HTTP error before any websocket.
		ln2, _ := net.Listen("tcp", "127.0.0.1:0")
		closedPort := ln2.Addr().(*net.TCPAddr).Port
		ln2.Close()
		_, resp, err := ts.dialWS(t, token, "/api/v1/environments/"+env.ID+"/port-forward?port="+strconv.Itoa(closedPort))
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("forward to a closed port: %v %v, want 502", resp, err)
		}
	})

	t.Run("web terminal", func(t *testing.T) {
		path := "/api/v1/environments/" + env.ID + "/pty?reconnect=term-1&width=100&height=30"
		ws, _, err := ts.dialWS(t, token, path)
		if err != nil {
			t.Fatal(err)
		}
		send := func(ws *websocket.Conn, data string) {
			msg, _ := json.Marshal(map[string]string{"data": data})
			if err := ws.Write(ts.ctx, websocket.MessageText, msg); err != nil {
				t.Fatal(err)
			}
		}
		// readUntil reads terminal output until it contains want.
		readUntil := func(ws *websocket.Conn, want string) string {
			var out strings.Builder
			for !strings.Contains(out.String(), want) {
				_, msg, err := ws.Read(ts.ctx)
				if err != nil {
					t.Fatalf("terminal output so far %q, waiting for %q: %v", out.String(), want, err)
				}
				out.Write(msg)
			}
			return out.String()
		}
		send(ws, "MARK=remembered; echo $((40+2))\r")
		readUntil(ws, "42")
		ws.Close(websocket.StatusNormalClosure, "blip")

		// Same id: the same shell, with its scrollback.
		ws2, _, err := ts.dialWS(t, token, path)
		if err != nil {
			t.Fatal(err)
		}
		readUntil(ws2, "42")
		send(ws2, "echo still-$MARK\r")
		readUntil(ws2, "still-remembered")

		if _, resp, err := ts.dialWS(t, otherToken, path); err == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("another user's terminal: %v, want 404", err)
		}
	})

	// Agent tokens are the supervisor's, not an sdk user's: checked on the
	// wire, route by route.
	t.Run("agent token is confined to its environment", func(t *testing.T) {
		agentToken := ts.agentToken(env.ID)
		other := ts.create(otherToken, sdk.CreateEnvironmentRequest{Name: "bobs"})
		var e sdk.ErrorResponse
		if code := ts.call("POST", "/api/v1/environments/"+other.ID+"/activity", agentToken, nil, &e); code != http.StatusNotFound {
			t.Fatalf("agent reporting for another environment = %d %+v, want 404", code, e)
		}
		if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", agentToken, nil, nil); code != http.StatusOK {
			t.Fatalf("agent reporting for its own = %d", code)
		}
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/v1/environments/" + env.ID},
			{"POST", "/api/v1/environments/" + env.ID + "/stop"},
			{"DELETE", "/api/v1/environments/" + env.ID},
			{"GET", "/api/v1/environments"},
			{"GET", "/api/v1/auth/me"},
		} {
			if code := ts.call(r.method, r.path, agentToken, nil, &e); code != http.StatusForbidden {
				t.Errorf("agent %s %s = %d, want 403", r.method, r.path, code)
			}
		}
		if _, resp, err := ts.dialWS(t, token, "/api/v1/environments/"+env.ID+"/tunnel"); err == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a user opening a tunnel: %v, want 403", err)
		}
		// The MAC's next-to-last character (all its bits count) changed.
		c := byte('A')
		if agentToken[len(agentToken)-2] == c {
			c = 'B'
		}
		forged := agentToken[:len(agentToken)-2] + string(c) + agentToken[len(agentToken)-1:]
		if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", forged, nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("forged agent token = %d, want 401", code)
		}
	})

	t.Run("not running", func(t *testing.T) {
		stopped := ts.create(token, sdk.CreateEnvironmentRequest{Name: "napping"})
		ts.waitStatus(token, stopped.ID, sdk.StatusRunning)
		ts.stopEnv(token, stopped.ID)
		ts.waitStatus(token, stopped.ID, sdk.StatusStopped)
		if _, resp, err := ts.dialWS(t, token, "/api/v1/environments/"+stopped.ID+"/ssh"); err == nil || resp.StatusCode != http.StatusConflict {
			t.Fatalf("ssh to a stopped environment: %v, want 409", err)
		}
	})
}

// agentToken is the token the server issued to env's supervisor for its
// current run.
func (ts *testServer) agentToken(envID string) string {
	ts.t.Helper()
	tok, err := ts.srv.AgentToken(ts.ctx, envID)
	if err != nil {
		ts.t.Fatal(err)
	}
	return tok
}

// TestSupervisorReconnects: a server restart does not kill the workspace;
// its supervisor dials the new server and connections work again.
func TestSupervisorReconnects(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	// Both servers listen on the same port: the supervisor was told one URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	first := startServerAt(t, dataDir, addr)
	token, _ := first.user("ada@example.com")
	env := first.create(token, sdk.CreateEnvironmentRequest{Name: "survivor"})
	first.waitStatus(token, env.ID, sdk.StatusRunning)
	first.sshRun(t, token, env.ID, "echo one")
	// The token of the workspace's run, issued at its start, outlives the
	// server: the supervisor's redial uses it.
	agentToken := first.agentToken(env.ID)
	first.stop()

	second := startServerAt(t, dataDir, addr)
	ctx, cancel := context.WithTimeout(second.ctx, 30*time.Second)
	defer cancel()
	if _, err := second.srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}
	if out := second.sshRun(t, token, env.ID, "echo two"); out != "two\n" {
		t.Fatalf("after restart: %q", out)
	}
	if now := second.agentToken(env.ID); now != agentToken {
		t.Fatal("the server restart changed the running workspace's agent token")
	}
	if code := second.call("POST", "/api/v1/environments/"+env.ID+"/activity", agentToken, nil, nil); code != http.StatusOK {
		t.Fatalf("the run's agent token after the restart = %d, want 200", code)
	}
}

func (ts *testServer) sshRun(t *testing.T, token, envID, cmd string) string {
	t.Helper()
	client := ts.sshClient(t, token, envID)
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

// TestIdleRule: what keeps a workspace alive is a person, not a connection.
// With auto_stop_minutes 1, a workspace where someone types in a web
// terminal every 20 s stays up; one with an SSH shell open and idle is
// stopped once a minute has passed without input.
func TestIdleRule(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.SupervisorEnv = append(c.SupervisorEnv, "DEV8_ACTIVITY_INTERVAL=20ms")
	})
	token, _ := ts.user("ada@example.com")
	typing := ts.create(token, sdk.CreateEnvironmentRequest{Name: "typing", AutoStopMinutes: minutes(1)})
	idle := ts.create(token, sdk.CreateEnvironmentRequest{Name: "idle-ssh", AutoStopMinutes: minutes(1)})
	ts.waitStatus(token, typing.ID, sdk.StatusRunning)
	ts.waitStatus(token, idle.ID, sdk.StatusRunning)

	// An open, idle interactive SSH shell.
	client := ts.sshClient(t, token, idle.ID)
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	// It sends SSH keepalives, as OpenSSH's ServerAliveInterval would.
	if _, _, err := client.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}

	ws, _, err := ts.dialWS(t, token, "/api/v1/environments/"+typing.ID+"/pty?reconnect=typist")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		ts.clock.Advance(20 * time.Second)
		typedAt := ts.clock.Now()
		msg, _ := json.Marshal(map[string]string{"data": "echo tick" + strconv.Itoa(i) + "\r"})
		if err := ws.Write(ts.ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		// The supervisor reports the keystrokes; wait until the server has
		// them (another process's report: only asking tells).
		wait.Succeeds(ts.ctx, t, fmt.Sprintf("typing at %v to be reported", typedAt), func() error {
			env, err := ts.srv.Store.GetEnvironment(ts.ctx, typing.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !env.LastAccessedAt.Before(typedAt.Add(-time.Second)) {
				return nil
			}
			return fmt.Errorf("last_accessed_at %v", env.LastAccessedAt)
		})
		if _, _, err := client.SendRequest("keepalive@openssh.com", true, nil); err != nil && i < 2 {
			t.Fatal(err)
		}
	}
	// 80 s have passed: the idle SSH workspace is stopped, the typed-in one
	// is not.
	stopped := ts.waitStatus(token, idle.ID, sdk.StatusStopped)
	if !strings.Contains(stopped.StatusReason, "without activity") {
		t.Fatalf("reason = %q", stopped.StatusReason)
	}
	if _, err := ts.srv.Manager.Reap(ts.ctx); err != nil {
		t.Fatal(err)
	}
	if env, _ := ts.srv.Store.GetEnvironment(ts.ctx, typing.ID); env.Status != store.StatusRunning {
		t.Fatalf("the workspace someone types in is %s", env.Status)
	}
}

// TestUsage: the supervisor samples its workspace and the owner reads the
// series back.
func TestUsage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.SupervisorEnv = append(c.SupervisorEnv, "DEV8_METRICS_INTERVAL=50ms")
	})
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("bob@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "measured"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)

	ada := ts.client(token)
	var usage []sdk.UsageSample
	// Samples arrive from another process at its own pace: ask until they
	// are there.
	wait.Succeeds(ts.ctx, t, "3 usage rows", func() error {
		var err error
		if usage, err = ada.Usage(ts.ctx, env.ID, time.Time{}, 0); err != nil {
			t.Fatalf("GET usage = %v", err)
		}
		if len(usage) >= 3 {
			return nil
		}
		return fmt.Errorf("only %d arrived", len(usage))
	})
	for i, r := range usage {
		if r.MemoryUsageMB <= 0 || r.DiskUsageMB < 0 || r.CPUUsagePercent < 0 || r.BillingPeriod == "" {
			t.Fatalf("implausible sample %+v", r)
		}
		if i > 0 && r.Timestamp.Before(usage[i-1].Timestamp) {
			t.Fatal("usage is not oldest first")
		}
	}
	last := usage[len(usage)-1].Timestamp
	later, err := ada.Usage(ts.ctx, env.ID, last.Add(time.Millisecond), 0)
	if err != nil {
		t.Fatalf("GET usage since %s = %v", last, err)
	}
	for _, r := range later {
		if r.Timestamp.Before(last) {
			t.Fatalf("since= returned an older row %v", r.Timestamp)
		}
	}
	// Disk is what the workspace's own files take, not the host's disk:
	// 5 MiB written into it show up in a later sample.
	before := usage[len(usage)-1]
	if err := os.WriteFile(filepath.Join(ts.workspaceDir(env.ID), "five-mib"), make([]byte, 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	wait.Succeeds(ts.ctx, t, "the 5 MiB written into the workspace in its disk figure", func() error {
		rows, err := ada.Usage(ts.ctx, env.ID, before.Timestamp.Add(time.Millisecond), 0)
		if err != nil {
			t.Fatalf("GET usage = %v", err)
		}
		for _, r := range rows {
			if r.DiskUsageMB >= before.DiskUsageMB+5 {
				if r.DiskUsageMB > before.DiskUsageMB+6 {
					t.Fatalf("disk went from %d MB to %d MB after writing 5 MiB", before.DiskUsageMB, r.DiskUsageMB)
				}
				return nil
			}
		}
		return fmt.Errorf("%d newer rows, none at %d MB or more", len(rows), before.DiskUsageMB+5)
	})
	if _, err := ts.client(otherToken).Usage(ts.ctx, env.ID, time.Time{}, 0); !isAPIError(err, http.StatusNotFound, "") {
		t.Fatalf("another user's usage = %v, want 404", err)
	}
	if _, err := ts.client(ts.agentToken(env.ID)).Usage(ts.ctx, env.ID, time.Time{}, 0); !isAPIError(err, http.StatusForbidden, "") {
		t.Fatalf("agent reading usage = %v, want 403", err)
	}
	// Posting samples is the supervisor's wire, not the sdk's.
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/usage", token, map[string]any{"samples": []any{}}, nil); code != http.StatusForbidden {
		t.Fatalf("user posting samples = %d, want 403", code)
	}
}

// TestBrowserTerminalAuth: a browser's WebSocket cannot send an
// Authorization header, so the web terminal takes the session cookie login
// sets, but only from this server's own pages (Origin), never from another
// site; the rest of the API takes the cookie only with the session's CSRF
// token when it changes state.
func TestBrowserTerminalAuth(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ts.user("ada@example.com")
	// Log in as a browser would and keep the cookie.
	resp, err := http.Post(ts.url+"/api/v1/auth/login", "application/json", strings.NewReader(`{"email":"ada@example.com","password":"correct horse"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "dev8_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("login set no HttpOnly SameSite=Lax session cookie: %+v", cookie)
	}
	var created struct{ Environment sdk.Environment }
	ts.call("POST", "/api/v1/environments", cookieToken(cookie), map[string]any{"name": "web"}, &created)
	env := created.Environment
	ts.waitStatus(cookieToken(cookie), env.ID, sdk.StatusRunning)

	path := "/api/v1/environments/" + env.ID + "/pty?reconnect=browser"
	dial := func(origin string) (*http.Response, error) {
		h := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := websocket.Dial(ts.ctx, strings.Replace(ts.url, "http", "ws", 1)+path, &websocket.DialOptions{HTTPHeader: h})
		if ws != nil {
			ws.CloseNow()
		}
		return resp, err
	}
	if _, err := dial(ts.url); err != nil {
		t.Fatalf("terminal from the server's own page with the cookie: %v", err)
	}
	if resp, err := dial("https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("terminal from another site with the visitor's cookie: %v %v, want 403", resp, err)
	}
	// A state change with the cookie alone is refused (CSRF).
	req, _ := http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/api/v1/environments/"+env.ID+"/stop", nil)
	req.AddCookie(cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie-only POST /stop = %d, want 403 CSRF_FAILED", resp.StatusCode)
	}
}

// cookieToken is the bearer token the session cookie carries (login hands
// the same session secret to both).
func cookieToken(c *http.Cookie) string { return c.Value }

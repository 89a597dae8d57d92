package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// login signs in and returns the session's secret and id.
func (ts *testServer) login(t *testing.T, email, password string) (secret, sessionID string) {
	t.Helper()
	var out struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
	}
	if code := ts.call("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &out); code != http.StatusOK {
		t.Fatalf("login %s = %d", email, code)
	}
	return out.Token, out.SessionID
}

// liveSet is one credential's open connections, by kind, each with a
// channel closed when the connection ends.
type liveSet struct {
	name   string
	closed map[string]chan struct{}
	ssh    *ssh.Client
}

var terminalIDs atomic.Int64

// openLive opens, with token, every kind of long-lived connection to env:
// an SSH session, a web terminal, a port-forward to echoPort, the event
// stream and a websocket through the IDE proxy; each is seen working.
func (ts *testServer) openLive(t *testing.T, name, token, envID string, echoPort int) *liveSet {
	t.Helper()
	ls := &liveSet{name: name, closed: map[string]chan struct{}{}}
	watch := func(kind string, wait func()) {
		ch := make(chan struct{})
		ls.closed[kind] = ch
		go func() { defer close(ch); wait() }()
	}
	base := "/api/v1/environments/" + envID

	ls.ssh = ts.sshClient(t, token, envID)
	if out := sshOutput(t, ls.ssh, "echo open"); out != "open\n" {
		t.Fatalf("%s: ssh: %q", name, out)
	}
	watch("ssh", func() { _ = ls.ssh.Wait() })

	pty, _, err := ts.dialWS(t, token, fmt.Sprintf("%s/pty?reconnect=live-%d", base, terminalIDs.Add(1)))
	if err != nil {
		t.Fatalf("%s: terminal: %v", name, err)
	}
	watch("terminal", func() {
		for {
			if _, _, err := pty.Read(ts.ctx); err != nil {
				return
			}
		}
	})

	fwd, _, err := ts.dialWS(t, token, base+"/port-forward?port="+strconv.Itoa(echoPort))
	if err != nil {
		t.Fatalf("%s: port-forward: %v", name, err)
	}
	watch("port-forward", echoThenDrain(t, name+": port-forward", websocket.NetConn(ts.ctx, fwd, websocket.MessageBinary)))

	// The IDE on its own origin, through an app session made from token
	// (a ticket redeemed as a browser would).
	ide, _, err := websocket.Dial(ts.ctx, strings.Replace(ts.appOrigin(envID, "ide"), "http", "ws", 1)+"/live", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: loopback.Transport()},
		HTTPHeader: http.Header{"Cookie": {ts.appCookie(token, envID, "ide")}},
	})
	if err != nil {
		t.Fatalf("%s: IDE websocket: %v", name, err)
	}
	t.Cleanup(func() { ide.CloseNow() })
	watch("ide", echoThenDrain(t, name+": IDE websocket", websocket.NetConn(ts.ctx, ide, websocket.MessageText)))

	req, err := http.NewRequestWithContext(ts.ctx, "GET", ts.url+"/api/v1/environments/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: event stream: %v %v", name, resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("%s: event stream's first line %q: %v", name, line, err)
	}
	watch("events", func() { _, _ = io.Copy(io.Discard, events) })
	return ls
}

// echoThenDrain checks that conn echoes, and returns a func that reads it
// until it ends.
func echoThenDrain(t *testing.T, what string, conn net.Conn) func() {
	t.Helper()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%s: echo %q, %v", what, buf, err)
	}
	return func() { _, _ = io.Copy(io.Discard, conn) }
}

func sshOutput(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	if err != nil {
		t.Fatalf("ssh %q: %v", cmd, err)
	}
	return string(out)
}

// wantClosed waits until every connection of ls has ended.
func (ls *liveSet) wantClosed(t *testing.T, why string) {
	t.Helper()
	ctx := wait.Context(t, wait.Short)
	for kind, ch := range ls.closed {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Errorf("%s: %s's %s still open", why, ls.name, kind)
		}
	}
}

// wantOpen checks that no connection of ls has ended, and that its SSH
// connection still carries a session.
func (ls *liveSet) wantOpen(t *testing.T, why string) {
	t.Helper()
	for kind, ch := range ls.closed {
		select {
		case <-ch:
			t.Errorf("%s: %s's %s ended", why, ls.name, kind)
		default:
		}
	}
	if out := sshOutput(t, ls.ssh, "echo still"); out != "still\n" {
		t.Errorf("%s: %s's ssh: %q", why, ls.name, out)
	}
}

// wantRefused checks that token opens nothing any more.
func (ts *testServer) wantRefused(t *testing.T, token, envID string, want int) {
	t.Helper()
	if _, resp, err := ts.dialWS(t, token, "/api/v1/environments/"+envID+"/pty?reconnect=refused"); err == nil || resp == nil || resp.StatusCode != want {
		t.Errorf("a new terminal with the revoked credential: %v %v, want %d", resp, err, want)
	}
}

// echoListener is a TCP echo server on loopback (for the local runtime,
// the workspace's network).
func echoListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRevocationEndsLiveConnections: SSH sessions, terminals,
// port-forwards, event streams and IDE websockets end as soon as the
// credential they were opened with is revoked — logout, a revoked session
// or API token, a password change (the other sessions) — or their user is
// suspended or given another role; connections of other credentials go on
// (issue 15 finding 8).
func TestRevocationEndsLiveConnections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = devserver.FakeCodeServer(t) })
	adminToken, _ := ts.user("admin@example.com") // the first account is the admin
	ownerToken, ownerID := ts.user("ada@example.com")
	env := ts.create(ownerToken, sdk.CreateEnvironmentRequest{Name: "live"})
	ts.waitStatus(ownerToken, env.ID, sdk.StatusRunning)
	ctx := wait.Context(t, wait.Medium)
	if _, err := ts.srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.VSCodeURL != "" }); err != nil {
		t.Fatalf("waiting for the IDE: %v", err)
	}
	port := echoListener(t)
	const password = "correct horse"

	t.Run("logout", func(t *testing.T) {
		s1, _ := ts.login(t, "ada@example.com", password)
		s2, _ := ts.login(t, "ada@example.com", password)
		gone := ts.openLive(t, "the session logged out", s1, env.ID, port)
		kept := ts.openLive(t, "another session", s2, env.ID, port)
		if code := ts.call("POST", "/api/v1/auth/logout", s1, nil, nil); code != http.StatusOK {
			t.Fatalf("logout = %d", code)
		}
		gone.wantClosed(t, "logout")
		kept.wantOpen(t, "another session's logout")
		ts.wantRefused(t, s1, env.ID, http.StatusUnauthorized)

		// Revoking a session from another one (Profile → sessions).
		s3, _ := ts.login(t, "ada@example.com", password)
		var sessions struct{ Sessions []sdk.Session }
		ts.call("GET", "/api/v1/auth/sessions", s2, nil, &sessions)
		var s2ID string
		for _, s := range sessions.Sessions {
			if s.Current {
				s2ID = s.ID
			}
		}
		if code := ts.call("DELETE", "/api/v1/auth/sessions/"+s2ID, s3, nil, nil); code != http.StatusOK {
			t.Fatalf("revoke session = %d", code)
		}
		kept.wantClosed(t, "session revoked")
		ts.wantRefused(t, s2, env.ID, http.StatusUnauthorized)
	})

	t.Run("API token revoked", func(t *testing.T) {
		var tok createdToken
		if code := ts.call("POST", "/api/v1/tokens", ownerToken, map[string]any{"name": "live"}, &tok); code != http.StatusCreated {
			t.Fatalf("create token = %d", code)
		}
		gone := ts.openLive(t, "the API token", tok.Token, env.ID, port)
		kept := ts.openLive(t, "the login session", ownerToken, env.ID, port)
		if code := ts.call("DELETE", "/api/v1/tokens/"+tok.APIToken.ID, ownerToken, nil, nil); code != http.StatusOK {
			t.Fatalf("revoke token = %d", code)
		}
		gone.wantClosed(t, "token revoked")
		kept.wantOpen(t, "another credential's token revoked")
		ts.wantRefused(t, tok.Token, env.ID, http.StatusUnauthorized)
	})

	t.Run("user suspended", func(t *testing.T) {
		var tok createdToken
		if code := ts.call("POST", "/api/v1/tokens", ownerToken, map[string]any{"name": "suspended"}, &tok); code != http.StatusCreated {
			t.Fatalf("create token = %d", code)
		}
		session, _ := ts.login(t, "ada@example.com", password)
		bySession := ts.openLive(t, "a session", session, env.ID, port)
		byToken := ts.openLive(t, "an API token", tok.Token, env.ID, port)
		admins := ts.openLive(t, "the admin", adminToken, env.ID, port)
		if code := ts.call("PATCH", "/api/v1/users/"+ownerID, adminToken, map[string]any{"suspended": true}, nil); code != http.StatusOK {
			t.Fatalf("suspend = %d", code)
		}
		bySession.wantClosed(t, "user suspended")
		byToken.wantClosed(t, "user suspended")
		admins.wantOpen(t, "another user suspended")
		ts.wantRefused(t, session, env.ID, http.StatusUnauthorized)
		if code := ts.call("PATCH", "/api/v1/users/"+ownerID, adminToken, map[string]any{"suspended": false}, nil); code != http.StatusOK {
			t.Fatalf("unsuspend = %d", code)
		}
	})

	t.Run("admin demoted", func(t *testing.T) {
		bobToken, bobID := ts.user("bob@example.com")
		if code := ts.call("PATCH", "/api/v1/users/"+bobID, adminToken, map[string]any{"role": "admin"}, nil); code != http.StatusOK {
			t.Fatalf("promote = %d", code)
		}
		// As an admin, Bob reaches Ada's workspace.
		asAdmin := ts.openLive(t, "Bob as an admin", bobToken, env.ID, port)
		if code := ts.call("PATCH", "/api/v1/users/"+bobID, adminToken, map[string]any{"role": "member"}, nil); code != http.StatusOK {
			t.Fatalf("demote = %d", code)
		}
		asAdmin.wantClosed(t, "admin demoted")
		// As a member he does not see it any more.
		ts.wantRefused(t, bobToken, env.ID, http.StatusNotFound)
	})

	t.Run("password changed", func(t *testing.T) {
		here, _ := ts.login(t, "ada@example.com", password)
		other, _ := ts.login(t, "ada@example.com", password)
		var tok createdToken
		if code := ts.call("POST", "/api/v1/tokens", here, map[string]any{"name": "stays"}, &tok); code != http.StatusCreated {
			t.Fatalf("create token = %d", code)
		}
		gone := ts.openLive(t, "another session", other, env.ID, port)
		keptHere := ts.openLive(t, "the session that changed it", here, env.ID, port)
		keptToken := ts.openLive(t, "an API token", tok.Token, env.ID, port)
		if code := ts.call("POST", "/api/v1/auth/password", here, map[string]string{"current_password": password, "new_password": "battery staple"}, nil); code != http.StatusOK {
			t.Fatalf("change password = %d", code)
		}
		gone.wantClosed(t, "password changed")
		keptHere.wantOpen(t, "password changed here")
		keptToken.wantOpen(t, "password changed (API tokens stay)")
		ts.wantRefused(t, other, env.ID, http.StatusUnauthorized)
	})
}

// TestLiveConnectionsRecheckedAgainstTheStore: what this server did not
// revoke itself — a session deleted by another replica, one that expired —
// ends the connections held with it at the next check.
func TestLiveConnectionsRecheckedAgainstTheStore(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) { c.LiveCheckInterval = 50 * time.Millisecond })
	_, userID := ts.user("ada@example.com")
	stream := func(token string) <-chan struct{} {
		t.Helper()
		req, err := http.NewRequestWithContext(ts.ctx, "GET", ts.url+"/api/v1/environments/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("event stream: %v %v", resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		done := make(chan struct{})
		go func() { defer close(done); _, _ = io.Copy(io.Discard, resp.Body) }()
		return done
	}
	ended := func(ch <-chan struct{}, why string) {
		t.Helper()
		select {
		case <-ch:
		case <-wait.Context(t, wait.Short).Done():
			t.Fatalf("%s: the event stream is still open", why)
		}
	}

	deleted, deletedID := ts.login(t, "ada@example.com", "correct horse")
	expiring, _ := ts.login(t, "ada@example.com", "correct horse")
	byDeleted, byExpiring := stream(deleted), stream(expiring)
	if err := ts.srv.Store.DeleteSession(context.Background(), userID, deletedID); err != nil {
		t.Fatal(err)
	}
	ended(byDeleted, "session deleted in the store")
	select {
	case <-byExpiring:
		t.Fatal("a live session's stream ended")
	default:
	}
	ts.clock.Advance(31 * 24 * time.Hour) // past the 30-day session lifetime
	ended(byExpiring, "session expired")
}

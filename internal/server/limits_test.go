package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// TestStreamCapsOverTheWire: event streams and websockets count against a
// per-user and a total cap; over it the answer is 429 TOO_MANY_STREAMS
// before anything is opened (a terminal's command does not run), and a
// stream that closes frees its slot.
func TestStreamCapsOverTheWire(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) { c.Streams = httpmw.StreamLimits{PerUser: 2, Total: 3} })
	ada, _ := ts.user("ada@example.com")
	bob, _ := ts.user("bob@example.com")
	carol, _ := ts.user("carol@example.com")
	env := ts.create(ada, sdk.CreateEnvironmentRequest{Name: "web"})
	ts.waitStatus(ada, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)

	refusal := func(token, path string) (int, sdk.ErrorResponse) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ts.ctx, http.MethodGet, ts.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e sdk.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	wantCapped := func(token, path string) {
		t.Helper()
		if code, e := refusal(token, path); code != http.StatusTooManyRequests || e.Code != sdk.CodeTooManyStreams || e.Details == "" {
			t.Fatalf("%s over the cap: %d %+v, want 429 %s", path, code, e, sdk.CodeTooManyStreams)
		}
	}
	const events = "/api/v1/environments/events"

	first, closeFirst := context.WithCancel(ts.ctx)
	defer closeFirst()
	if _, code := ts.openEvents(first, ada, ""); code != http.StatusOK {
		t.Fatalf("ada's first stream: %d", code)
	}
	if _, code := ts.openEvents(ts.ctx, ada, ""); code != http.StatusOK {
		t.Fatalf("ada's second stream: %d", code)
	}
	wantCapped(ada, events)
	// A websocket counts the same, and over the cap its terminal's command
	// never runs.
	overCap := "/api/v1/environments/" + env.ID + "/pty?reconnect=x&command=" + url.QueryEscape("touch over-cap")
	if _, resp, err := ts.dialWS(t, ada, overCap); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a terminal over ada's cap: %v %v, want 429", resp, err)
	}
	if _, code := ts.openEvents(ts.ctx, bob, ""); code != http.StatusOK {
		t.Fatalf("bob's stream: %d", code)
	}
	wantCapped(carol, events) // the server's total

	// Ada closes one; its slot comes free once the server has seen it go.
	closeFirst()
	underCap := "/api/v1/environments/" + env.ID + "/pty?reconnect=y&command=" + url.QueryEscape("touch under-cap")
	var opened *websocket.Conn
	wait.Succeeds(wait.Context(t, wait.Short), t, "ada's closed stream to free its slot", func() error {
		ws, resp, err := websocket.Dial(ts.ctx, strings.Replace(ts.url, "http", "ws", 1)+underCap,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + ada}}})
		if err != nil {
			if resp != nil && resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("terminal: %v %v", resp, err)
			}
			return err
		}
		opened = ws
		return nil
	})
	defer opened.CloseNow()
	for { // the command's terminal closes when it is done
		if _, _, err := opened.Read(ts.ctx); err != nil {
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "under-cap")); err != nil {
		t.Fatalf("the terminal under the cap did not run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "over-cap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the terminal refused over the cap ran its command: %v", err)
	}
}

// TestSlowClientsAreCutStreamsAreNot: a request body trickled in a byte at
// a time is cut off at the read bound and does nothing; event streams and
// terminals stay open far past every bound.
func TestSlowClientsAreCutStreamsAreNot(t *testing.T) {
	t.Parallel()
	// Short bounds, but not so short that this test's own ordinary
	// requests miss them on a loaded machine under -race: at a load of 25
	// on two cores a signup took 5 s and missed bounds of 1.5 s and 4 s.
	const read, bound = 5 * time.Second, 15 * time.Second
	ts := startServer(t, "", func(c *server.Config) {
		c.RequestTimeouts = httpmw.RequestTimeouts{Read: read, Request: bound}
	})
	ada, _ := ts.user("ada@example.com")
	env := ts.create(ada, sdk.CreateEnvironmentRequest{Name: "web"})
	ts.waitStatus(ada, env.ID, sdk.StatusRunning)

	// Streams opened now must outlive the bounds.
	ctx, cancel := context.WithCancel(ts.ctx)
	defer cancel()
	stream, code := ts.openEvents(ctx, ada, "")
	if code != http.StatusOK {
		t.Fatalf("event stream: %d", code)
	}
	term, _, err := ts.dialWS(t, ada, "/api/v1/environments/"+env.ID+"/pty?reconnect=slow")
	if err != nil {
		t.Fatalf("terminal: %v", err)
	}

	// A signup whose body comes a byte every 300 ms (it would take 49 s).
	body := `{"email":"slow@example.com","password":"correct horse","name":"` + strings.Repeat("s", 99) + `"}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/v1/auth/signup HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", strings.TrimPrefix(ts.url, "http://"), len(body))
	cut := make(chan time.Duration, 1)
	go func() {
		// The server's answer (a refusal) or its hanging up ends this.
		_, _ = io.Copy(io.Discard, conn)
		cut <- time.Since(start)
	}()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	var took time.Duration
sending:
	for i := 0; i < len(body); i++ {
		select {
		case took = <-cut:
			break sending
		case <-tick.C:
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				took = <-cut
				break sending
			}
		}
	}
	if took == 0 || took > bound+read {
		t.Fatalf("the slow body was held %v (sent in full: %v), want it cut after about %v", took, took == 0, read)
	}
	if _, err := ts.srv.Store.GetUserByEmail(ts.ctx, "slow@example.com"); err == nil {
		t.Fatal("the cut-off signup made an account")
	}

	// Both streams were opened before start: past the whole-request bound
	// they still work.
	<-time.After(bound + time.Second - time.Since(start))
	other := ts.create(ada, sdk.CreateEnvironmentRequest{Name: "later"})
	seen := false
	for ev := range stream {
		if ev.name == "environment" && strings.Contains(ev.data, other.ID) {
			seen = true
			break
		}
	}
	if !seen {
		t.Fatalf("the event stream ended after %v", time.Since(start))
	}
	if err := term.Write(ts.ctx, websocket.MessageText, []byte(`{"data":"echo alive-$((20+22))\n"}`)); err != nil {
		t.Fatalf("the terminal after %v: %v", time.Since(start), err)
	}
	var out strings.Builder
	for !strings.Contains(out.String(), "alive-42") {
		_, msg, err := term.Read(ts.ctx)
		if err != nil {
			t.Fatalf("the terminal after %v: %v (output %q)", time.Since(start), err, out.String())
		}
		out.Write(msg)
	}
}

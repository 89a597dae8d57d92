package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/sdk"
)

// TestRefusedTerminalRunsNothing: a web terminal's handshake that is refused
// (another site's page with the visitor's cookie, a request that is not a
// websocket at all) must not run its command=, which a terminal's stream
// runs as soon as it opens. The command would leave a file in the
// workspace; the same request from the server's own page shows that it
// does.
func TestRefusedTerminalRunsNothing(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)
	cookie := http.Header{"Cookie": {httpmw.SessionCookie + "=" + token}}
	pty := func(file string) string {
		return "/api/v1/environments/" + env.ID + "/pty?reconnect=" + file + "&command=" + url.QueryEscape("touch "+file)
	}
	wsURL := strings.Replace(ts.url, "http", "ws", 1)

	refused := []struct {
		name   string
		file   string
		header http.Header
		status int
	}{
		{"another site's page with the cookie", "cross-site", withHeader(cookie, "Origin", "https://evil.example"), http.StatusForbidden},
		{"another site, Origin of the same host name on another port", "other-port", withHeader(cookie, "Origin", "http://127.0.0.1:1"), http.StatusForbidden},
		{"a sandboxed frame (Origin null)", "null-origin", withHeader(cookie, "Origin", "null"), http.StatusForbidden},
	}
	for _, c := range refused {
		ws, resp, err := websocket.Dial(ts.ctx, wsURL+pty(c.file), &websocket.DialOptions{HTTPHeader: c.header})
		if ws != nil {
			ws.CloseNow()
		}
		if err == nil || resp == nil || resp.StatusCode != c.status {
			t.Errorf("%s: %v %v, want %d", c.name, resp, err, c.status)
		}
	}
	// Not a websocket handshake at all (a plain GET, a handshake with a
	// bad key): refused before anything opens, too.
	for file, h := range map[string]http.Header{
		"plain-get": {"Authorization": {"Bearer " + token}},
		"bad-key": {"Authorization": {"Bearer " + token}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"not sixteen bytes"}},
		"old-version": {"Authorization": {"Bearer " + token}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}},
	} {
		req, err := http.NewRequestWithContext(ts.ctx, http.MethodGet, ts.url+pty(file), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %d, want a 4xx", file, resp.StatusCode)
		}
	}

	// The control: from the server's own page the command runs, and the
	// terminal closes when it is done.
	ws, _, err := websocket.Dial(ts.ctx, wsURL+pty("same-origin"), &websocket.DialOptions{HTTPHeader: withHeader(cookie, "Origin", ts.url)})
	if err != nil {
		t.Fatalf("terminal from the server's own page: %v", err)
	}
	defer ws.CloseNow()
	for {
		if _, _, err := ws.Read(ts.ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure && !errors.Is(err, context.Canceled) {
				t.Logf("terminal ended: %v", err)
			}
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "same-origin")); err != nil {
		t.Fatalf("the control command did not run: %v", err)
	}
	for _, file := range []string{"cross-site", "other-port", "null-origin", "plain-get", "bad-key", "old-version"} {
		if _, err := os.Stat(filepath.Join(dir, file)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused handshake ran its command: %s exists (%v)", file, err)
		}
	}
}

// withHeader is h with key set to value (h is not changed).
func withHeader(h http.Header, key, value string) http.Header {
	out := h.Clone()
	out.Set(key, value)
	return out
}

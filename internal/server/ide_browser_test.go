package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// chromium finds a Chromium to drive, or skips (fails under CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("DEV8_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run the browser tests: install chromium (.ci/run does)")
	}
	t.Skip("no Chromium found (set DEV8_CHROMIUM)")
	return ""
}

// browser starts a headless Chromium for the test and returns a tab.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	return tab
}

// lastAccessed returns the environment's last_accessed_at.
func (ts *testServer) lastAccessed(token, id string) time.Time {
	ts.t.Helper()
	env, err := ts.client(token).GetEnvironment(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("get environment: %v", err)
	}
	if env.LastAccessedAt.IsZero() {
		ts.t.Fatal("no last_accessed_at in the environment")
	}
	return env.LastAccessedAt
}

// TestIDEActivity opens VS Code (the real code-server through the proxy) in
// a real headless Chromium and checks the IDE's activity rule: opening the
// workbench counts, the tab's own traffic while nobody touches it does not,
// and a key press does.
func TestIDEActivity(t *testing.T) {
	t.Parallel()
	codeServer := os.Getenv("DEV8_CODE_SERVER")
	if codeServer == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must test the IDE: set DEV8_CODE_SERVER (scripts/install-code-server.sh)")
		}
		t.Skip("DEV8_CODE_SERVER not set")
	}
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = codeServer })
	// Started after the server, so cleaned up before it: the browser's
	// open connections would hold up the server's graceful shutdown.
	tab := browser(t, context.Background())
	token, _ := ts.user("ada@example.com")
	otherToken, _ := ts.user("mallory@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "ide", TemplateName: "nodejs", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	checkIDE(t, ts, env, token, otherToken)

	// The report endpoint, on the IDE's own origin, takes only the IDE
	// page's own reports, with the IDE's own session.
	ideOrigin := ideOriginOf(t, ts, env.ID)
	ownerCookie := ts.appCookie(token, env.ID, "ide")
	otherEnv := ts.create(otherToken, sdk.CreateEnvironmentRequest{Name: "theirs", AutoStopMinutes: minutes(60)})
	ts.waitStatus(otherToken, otherEnv.ID, sdk.StatusRunning)
	otherCookie := ts.appCookie(otherToken, otherEnv.ID, "3000")
	report := func(cookie string, header http.Header) int {
		req, _ := http.NewRequestWithContext(ts.ctx, "POST", ideOrigin+"/__dev8/activity", nil)
		req.Header = header
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := loopback.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		cookie string
		header http.Header
		want   int
	}{
		"no header":            {ownerCookie, http.Header{}, http.StatusForbidden},
		"another site":         {ownerCookie, http.Header{"X-Dev8-Activity": {"1"}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		"the dashboard's page": {ownerCookie, http.Header{"X-Dev8-Activity": {"1"}, "Origin": {ts.url}}, http.StatusForbidden},
		// Another user's app session (for their own workspace's port) is
		// not this IDE's; nor is any dashboard session.
		"another user's app session":   {otherCookie, http.Header{"X-Dev8-Activity": {"1"}}, http.StatusUnauthorized},
		"the owner's dashboard cookie": {"dev8_session=" + token, http.Header{"X-Dev8-Activity": {"1"}}, http.StatusUnauthorized},
		"no credentials":               {"", http.Header{"X-Dev8-Activity": {"1"}}, http.StatusUnauthorized},
		"the owner's fetch":            {ownerCookie, http.Header{"X-Dev8-Activity": {"1"}, "Origin": {ideOrigin}}, http.StatusNoContent},
	} {
		if got := report(c.cookie, c.header); got != c.want {
			t.Errorf("%s: POST activity = %d, want %d", name, got, c.want)
		}
	}

	u, err := url.Parse(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	// Count what the workbench sends on its websocket, to know when it
	// has been left alone long enough to have sent its keepalives.
	var framesSent atomic.Int64
	if err := chromedp.Listen(tab, func(ev any) {
		if _, ok := ev.(*network.EventWebSocketFrameSent); ok {
			framesSent.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	httpOnly := true
	if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{
		Name: "dev8_session", Value: token, Domain: u.Hostname(), Path: "/", HTTPOnly: &httpOnly,
	}); err != nil {
		t.Fatal(err)
	}

	// Opening the workbench counts as use. (The clock moves a minute at
	// each step to tell the steps' timestamps apart; the auto-stop is an
	// hour away.)
	ts.clock.Advance(time.Minute)
	opened := ts.clock.Now()
	tctx, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx,
		chromedp.Navigate(env.VSCodeURL),
		chromedp.WaitVisible(chromedp.CSS(`.monaco-workbench`)),
	); err != nil {
		t.Fatalf("open the workbench: %v", err)
	}
	if got := ts.lastAccessed(token, env.ID); got.Before(opened) {
		t.Fatalf("last_accessed_at %v after opening the IDE at %v: opening did not count", got, opened)
	}

	// Left alone, the workbench keeps talking to code-server (a keepalive
	// every few seconds); none of that counts.
	ts.clock.Advance(time.Minute)
	idleFrom := ts.clock.Now()
	start := framesSent.Load()
	wait.Eventually(tctx, t, "the idle workbench to send on its websocket", func() bool { return framesSent.Load() >= start+2 })
	if got := ts.lastAccessed(token, env.ID); !got.Before(idleFrom) {
		t.Fatalf("an untouched IDE tab counted as use: last_accessed_at %v, idle since %v", got, idleFrom)
	}

	// A key press does count.
	if err := chromedp.Do(tctx, chromedp.KeyEvent("a")); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(tctx, t, "a key press in the IDE to be reported as activity", func() bool {
		return !ts.lastAccessed(token, env.ID).Before(idleFrom)
	})

	// The page was not broken by the script: code-server's own CSP is kept
	// beside the proxy's frame-ancestors policy.
	var csp []string
	req, _ := http.NewRequestWithContext(ts.ctx, "GET", env.VSCodeURL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := loopback.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp = resp.Header.Values("Content-Security-Policy")
	if len(csp) != 2 || !strings.Contains(strings.Join(csp, " "), "script-src 'self'") {
		t.Errorf("workbench CSP = %q, want code-server's and frame-ancestors", csp)
	}
}

package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

// codeServerOrSkip is the code-server to run workspaces with
// (DEV8_CODE_SERVER), or skips the test (fails under CI).
func codeServerOrSkip(t *testing.T) string {
	t.Helper()
	cs := os.Getenv("DEV8_CODE_SERVER")
	if cs == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must test the IDE: set DEV8_CODE_SERVER (scripts/install-code-server.sh)")
		}
		t.Skip("DEV8_CODE_SERVER not set")
	}
	return cs
}

// get sends a GET with headers and does not follow redirects.
func (ts *testServer) get(path string, header http.Header) (*http.Response, []byte) {
	ts.t.Helper()
	req, err := http.NewRequestWithContext(ts.ctx, "GET", ts.url+path, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header = header
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// browserAccept is what Chromium sends when it navigates to a page.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// TestIDEPagesHTTP: /w/{id}/ide/ answers a browser with pages (sign in and
// come back; the stopped workspace's page; another user's 404 page) and
// API clients with the API's JSON errors, as before.
func TestIDEPagesHTTP(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ts.user("admin@example.com") // the first account is the admin, who may see every environment
	token, _ := ts.user("ada@example.com")
	other, _ := ts.user("mallory@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ide := "/w/" + env.ID + "/ide/?folder=%2Fworkspace"

	isJSONError := func(name string, resp *http.Response, body []byte, status int) {
		t.Helper()
		var e sdk.ErrorResponse
		if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil || e.Error == "" || e.Code == "" {
			t.Errorf("%s: %d %s %q, want a %d JSON error", name, resp.StatusCode, resp.Header.Get("Content-Type"), body, status)
		}
	}
	isPage := func(name string, resp *http.Response, body []byte, status int, want string) {
		t.Helper()
		if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s, want a %d page with %q:\n%s", name, resp.StatusCode, resp.Header.Get("Content-Type"), status, want, body)
		}
	}

	// A browser without a session: to the sign-in page, and back after.
	resp, _ := ts.get(ide, http.Header{"Accept": {browserAccept}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/signin" || loc.Query().Get("next") != ide {
		t.Errorf("signed-out browser: %d Location %q, want 303 to /signin?next=%s", resp.StatusCode, resp.Header.Get("Location"), ide)
	}
	// API clients keep the API's answers.
	resp, body := ts.get(ide, http.Header{})
	isJSONError("no credentials, no Accept", resp, body, http.StatusUnauthorized)
	resp, body = ts.get(ide, http.Header{"Accept": {"application/json, text/html"}})
	isJSONError("no credentials, JSON first", resp, body, http.StatusUnauthorized)
	resp, body = ts.get(ide, http.Header{"Accept": {browserAccept}, "Authorization": {"Bearer " + token}})
	isJSONError("bearer token, stopped", resp, body, http.StatusConflict)

	// With the session: the stopped workspace's page.
	cookie := http.Header{"Accept": {browserAccept}, "Cookie": {"dev8_session=" + token}}
	resp, body = ts.get(ide, cookie)
	isPage("stopped", resp, body, http.StatusConflict, "web is stopped")
	if !strings.Contains(string(body), `id="gate-start"`) || strings.Contains(string(body), `id="gate-start" hidden`) {
		t.Errorf("the stopped workspace's page offers no Start button:\n%s", body)
	}
	// Another user's: the 404 page, with their own navigation.
	resp, body = ts.get(ide, http.Header{"Accept": {browserAccept}, "Cookie": {"dev8_session=" + other}})
	isPage("another user's", resp, body, http.StatusNotFound, `id="signout"`)
	resp, body = ts.get("/w/env_nosuchenvironment/ide/", cookie)
	isPage("missing", resp, body, http.StatusNotFound, "Not found")
	resp, body = ts.get("/w/"+env.ID+"/no-such-thing", cookie)
	isPage("no such route under /w/", resp, body, http.StatusNotFound, "Not found")
	resp, body = ts.get("/w/"+env.ID+"/no-such-thing", http.Header{"Cookie": {"dev8_session=" + token}})
	isJSONError("no such route under /w/, not a browser", resp, body, http.StatusNotFound)
	// Any other missing page keeps a signed-in visitor's navigation too.
	resp, body = ts.get("/no/such/page", cookie)
	isPage("404 signed in", resp, body, http.StatusNotFound, `id="signout"`)
	resp, body = ts.get("/no/such/page", http.Header{"Accept": {browserAccept}})
	isPage("404 signed out", resp, body, http.StatusNotFound, `href="/signin"`)
}

// TestIDEPages drives /w/{id}/ide/ in headless Chromium with a real
// code-server: signed out it signs in and comes back; a stopped workspace's
// page starts it and then opens VS Code; a failed one shows the reason and
// Start and Delete; another user's is the 404 page.
func TestIDEPages(t *testing.T) {
	t.Parallel()
	codeServer := codeServerOrSkip(t)
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = codeServer })
	ts.user("admin@example.com") // the first account is the admin, who may see every environment
	token, _ := ts.user("ada@example.com")
	other, _ := ts.user("mallory@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web"})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	theirs := ts.create(other, sdk.CreateEnvironmentRequest{Name: "private"})
	ideURL := env.VSCodeURL // /w/{id}/ide/?folder=…
	idePath := strings.TrimPrefix(ideURL, ts.url)

	p := newPageTest(t, 3*time.Minute)
	p.step("IDE signed out",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(ideURL),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
	)
	if next := p.eval(`new URLSearchParams(location.search).get("next")`); next != idePath {
		t.Errorf("sign-in next = %q, want %q", next, idePath)
	}
	p.step("sign in, back to the IDE",
		chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse"),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#ide-gate[data-status=STOPPED] #gate-start`)),
	)
	if path := p.eval(`location.pathname + location.search`); path != idePath {
		t.Errorf("after signing in: %s, want %s", path, idePath)
	}
	if title := p.eval(`document.querySelector("#gate-title").textContent`); title != "web is stopped" {
		t.Errorf("title %q", title)
	}
	p.checkAllowing("ide-stopped", "status of 409")

	p.step("start, then VS Code",
		chromedp.Click(chromedp.CSS("#gate-start")),
		// code-server's workbench, through the proxy, on the IDE's own
		// origin, at the path and query the link named.
		chromedp.WaitVisible(chromedp.CSS(".monaco-workbench")),
	)
	ideOrigin := ideOriginOf(t, ts, env.ID)
	wantAt := ideOrigin + "/" + strings.TrimPrefix(idePath, "/w/"+env.ID+"/ide/")
	if at := p.eval(`location.origin + location.pathname + location.search`); at != wantAt {
		t.Errorf("the IDE opened at %s, want %s", at, wantAt)
	}
	if got, err := ts.client(token).GetEnvironment(ts.ctx, env.ID); err != nil || got.Status != sdk.StatusRunning {
		t.Fatalf("after Start on the IDE page: %+v, %v", got, err)
	}
	// What the workbench logs is code-server's, and the page's health
	// checks before code-server answered were refused (502) on purpose.
	p.problems.take()
	p.check("ide-opened")
	// Leave the workbench before its workspace is killed: its reconnection
	// attempts are not this test's subject.
	p.step("leave the IDE", chromedp.Navigate("about:blank"))
	p.problems.take()

	// The workspace fails (its supervisor is killed): the page says why
	// and offers Start and Delete.
	if err := syscall.Kill(ts.supervisorPID(t, env.ID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(token, env.ID, sdk.StatusError)
	p.step("failed workspace",
		chromedp.Navigate(ideURL),
		chromedp.WaitVisible(chromedp.CSS(`#ide-gate[data-status=ERROR]`)),
		chromedp.WaitVisible(chromedp.CSS(`#gate-reason`)),
		chromedp.WaitVisible(chromedp.CSS(`#gate-start`)),
		chromedp.WaitVisible(chromedp.CSS(`#gate-delete`)),
	)
	if reason := p.eval(`document.querySelector("#gate-reason").textContent`); !strings.Contains(reason, "killed") {
		t.Errorf("the failed workspace's reason: %q, want the signal", reason)
	}
	p.checkAllowing("ide-error", "status of 409")

	// Another user's workspace: the 404 page, with the visitor's navigation.
	resp, err := chromedp.Run(p.ctx, chromedp.NavigateResponse(ts.url+"/w/"+theirs.ID+"/ide/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNotFound {
		t.Errorf("another user's IDE = %d, want 404", resp.Status)
	}
	p.step("404 signed in", chromedp.WaitVisible(chromedp.CSS(`.topbar #signout`)), chromedp.WaitVisible(chromedp.CSS(`main a[href="/dashboard"]`)))
	p.check("ide-not-yours")

	// Start from the failed workspace's page: it waits for the workspace
	// (STARTING, then RUNNING and code-server answering) and opens VS Code.
	p.step("start the failed workspace",
		chromedp.Navigate(ideURL),
		chromedp.WaitVisible(chromedp.CSS(`#ide-gate[data-status=ERROR] #gate-start`)),
		waitFor(`document.readyState === "complete"`),
		chromedp.Click(chromedp.CSS("#gate-start")),
		chromedp.WaitVisible(chromedp.CSS(".monaco-workbench")),
	)
	if got, err := ts.client(token).GetEnvironment(ts.ctx, env.ID); err != nil || got.Status != sdk.StatusRunning {
		t.Fatalf("after Start on the failed workspace's IDE page: %+v, %v", got, err)
	}
	p.problems.take() // code-server's own console, and the refused health checks
	p.step("leave the IDE again", chromedp.Navigate("about:blank"))
}

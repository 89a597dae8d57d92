package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

// typeInTerminal types a command into the web terminal and presses Enter.
// (Typed as a paste: CDP's synthetic key events reach xterm.js twice.)
func typeInTerminal(command string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS(`.xterm-helper-textarea`), chromedp.NodeReady),
		chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: command})
			return err
		}),
		chromedp.KeyEvent(kb.Enter),
	}
}

// TestTerminalPage: the web terminal of a stopped workspace says so and
// offers Start, then connects; it fills the window and is named after the
// workspace; a workspace stopped under it brings the offer back instead of
// endless reconnecting.
func TestTerminalPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "shell"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)

	p := newPageTest(t, 2*time.Minute)
	p.step("laptop", chromedp.EmulateViewport(1280, 800))
	p.signIn(ts.url, "ada@example.com", "correct horse")
	p.step("stopped terminal",
		chromedp.Navigate(ts.url+"/environments/"+env.ID+"/terminal"),
		chromedp.WaitVisible(chromedp.CSS(`#terminal-start`)),
		waitFor(`document.querySelector("#terminal-gate-message").textContent.startsWith("shell is stopped")`),
	)
	if title := p.eval(`document.title`); title != "shell · Terminal · Dev8" {
		t.Errorf("title %q", title)
	}
	if state := p.eval(`document.querySelector("#terminal-state").textContent`); strings.Contains(state, "onnect") {
		t.Errorf("a stopped workspace's terminal says %q", state)
	}
	p.check("terminal-stopped")

	p.step("start and connect",
		chromedp.Click(chromedp.CSS(`#terminal-start`)),
		chromedp.WaitVisible(chromedp.CSS(`#terminal-state[data-state=open]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#terminal-gate`)),
	)
	p.step("a command", append(typeInTerminal("echo started-$((6*7))"),
		waitFor(`document.querySelector(".xterm-rows").innerText.includes("started-42")`))...)
	// Full height: the terminal reaches the bottom of the window.
	if got := p.eval(`(() => { const r = document.querySelector("#terminal").getBoundingClientRect();
		return r.height > innerHeight * 0.75 && innerHeight - r.bottom < 24 && document.documentElement.scrollHeight <= innerHeight ? "ok" : JSON.stringify([r.top, r.bottom, innerHeight, document.documentElement.scrollHeight]); })()`); got != "ok" {
		t.Errorf("the terminal does not fill the window: [top, bottom, window, page] = %s", got)
	}
	p.check("terminal-running")

	// Stopped from elsewhere: the page says so and offers Start again.
	ts.stopEnv(token, env.ID)
	p.step("stopped under it",
		chromedp.WaitVisible(chromedp.CSS(`#terminal-start`)),
		waitFor(`document.querySelector("#terminal-gate-message").textContent.startsWith("shell is stopped")`),
	)
	p.checkAllowing("terminal-stopped-again", "WebSocket")
	p.step("phone", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(chromedp.CSS(`#terminal-start`)))
	checkNoOverflow(t, p, "terminal-phone")
}

// checkNoOverflow asserts the page is no wider than the window, and keeps
// a screenshot.
func checkNoOverflow(t *testing.T, p *pageTest, page string) {
	t.Helper()
	if got := p.eval(`(() => { const w = document.documentElement.scrollWidth; return w <= innerWidth ? "ok" :
		w + " > " + innerWidth + ": " + [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > innerWidth + 1).slice(0, 5).map((e) => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className).join(", "); })()`); got != "ok" {
		t.Errorf("%s overflows the window: %s", page, got)
	}
	p.check(page)
}

// TestCreateProgressFailure: when creation fails, the progress view says
// so with the reason and what to do, offers Start again and Delete, and
// Delete brings the form back filled; the failed environment's page says
// it was never active, and its IDE page shows the reason with Start and
// Delete.
func TestCreateProgressFailure(t *testing.T) {
	t.Parallel()
	// Every workspace fails to start: its supervisor cannot be found.
	ts := startServer(t, "", func(c *server.Config) { c.SupervisorCommand = []string{"/nonexistent/dev8-supervisor"} })
	ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	p := newPageTest(t, 2*time.Minute)
	p.step("laptop", chromedp.EmulateViewport(1280, 800))
	p.signIn(ts.url, "ada@example.com", "correct horse")
	p.step("create",
		chromedp.Navigate(ts.url+"/new"),
		chromedp.WaitVisible(chromedp.CSS(`#templates .choice[aria-checked=true]`)),
		chromedp.SendKeys(chromedp.CSS("#env-name"), "doomed"),
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#progress[data-outcome=failed]`)),
		chromedp.WaitVisible(chromedp.CSS(`#progress-error`)),
		chromedp.WaitVisible(chromedp.CSS(`#progress-retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#progress-delete`)),
	)
	if title := p.eval(`document.querySelector("#progress-title").textContent`); title != "doomed could not be created" {
		t.Errorf("progress title %q", title)
	}
	if reason := p.eval(`document.querySelector("#progress-error").textContent`); !strings.Contains(reason, "nonexistent") {
		t.Errorf("progress reason %q, want the missing supervisor named", reason)
	}
	if msg := p.eval(`document.querySelector("#progress-message").textContent`); !strings.HasPrefix(msg, "What to do") {
		t.Errorf("progress message %q", msg)
	}
	if state := p.eval(`document.querySelector("#steps li[data-step=CREATING]").dataset.state`); state != "failed" {
		t.Errorf("the first step is %q, want failed", state)
	}
	p.check("create-failed")
	id := p.eval(`new URL(document.querySelector("#progress-open").href).pathname.split("/").pop()`)

	// Start again fails the same way, and the view says so again.
	p.step("start again",
		chromedp.Click(chromedp.CSS(`#progress-retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#progress[data-outcome=failed] #progress-retry:not([disabled])`)),
	)

	// The environment page: never active, the reason, no charts but an
	// explanation.
	p.step("environment page",
		chromedp.Navigate(ts.url+"/environments/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#env-status[data-status=ERROR]`)),
		waitFor(`document.querySelector("#d-last").textContent === "never"`),
		chromedp.WaitVisible(chromedp.CSS(`#usage-empty`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#charts`)),
	)
	if title := p.eval(`document.title`); title != "doomed · Dev8" {
		t.Errorf("environment page title %q", title)
	}
	p.check("environment-failed")

	// Its IDE page: the reason, Start and Delete.
	p.step("IDE page of the failed workspace",
		chromedp.Navigate(ts.url+"/w/"+id+"/ide/"),
		chromedp.WaitVisible(chromedp.CSS(`#ide-gate[data-status=ERROR] #gate-start`)),
		chromedp.WaitVisible(chromedp.CSS(`#gate-delete`)),
		waitFor(`document.querySelector("#gate-reason").textContent.includes("nonexistent")`),
	)
	p.checkAllowing("ide-failed", "status of 409")
	p.step("delete from the IDE page",
		waitFor(`document.readyState === "complete"`),
		chromedp.Click(chromedp.CSS(`#gate-delete`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-page=dashboard] #env-rows, body[data-page=dashboard] #empty`)),
	)
	if got, err := ts.client(token).GetEnvironment(ts.ctx, id); err == nil && got.Status != sdk.StatusDeleting {
		t.Errorf("after Delete on the IDE page: %s", got.Status)
	} else if err != nil && !isAPIError(err, http.StatusNotFound, "") {
		t.Errorf("after Delete on the IDE page: %v", err)
	}
	p.problems.take() // the deleted environment's refusals as the page left

	// Delete and start over: the form is back, filled.
	p.step("back to the progress",
		chromedp.Navigate(ts.url+"/new"),
		chromedp.WaitVisible(chromedp.CSS(`#templates .choice[aria-checked=true]`)),
		chromedp.SendKeys(chromedp.CSS("#env-name"), "doomed-2"),
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#progress-delete`)),
		chromedp.Click(chromedp.CSS(`#progress-delete`)),
		chromedp.WaitVisible(chromedp.CSS(`#create-form`)),
		waitFor(`document.querySelector("#env-name").value === "doomed-2"`),
	)
	p.check("create-start-over")
}

// TestEnvironmentPageAndNavigation: the environment page's connection
// commands, VS Code as its first action, usage charts labelled as the
// workspace's own disk use, a fork from a snapshot through the create
// page, and the signed-in navigation folded behind a Menu button at phone
// width with nothing overflowing.
func TestEnvironmentPageAndNavigation(t *testing.T) {
	t.Parallel()
	codeServer := codeServerOrSkip(t)
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = codeServer })
	ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "api"})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	snap, err := ts.client(token).CreateSnapshot(ts.ctx, env.ID)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	p := newPageTest(t, 3*time.Minute)
	p.step("laptop", chromedp.EmulateViewport(1280, 800))
	p.signIn(ts.url, "ada@example.com", "correct horse")
	p.step("environment page",
		chromedp.Navigate(ts.url+"/environments/"+env.ID),
		chromedp.WaitVisible(chromedp.CSS(`#env-status[data-status=RUNNING]`)),
		chromedp.WaitVisible(chromedp.CSS(`#env-actions a.primary[data-open=vscode]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#snapshots li[data-snapshot=%q][data-status=COMPLETED] a[data-fork]`, snap.ID))),
	)
	for sel, want := range map[string]string{
		"#conn-cli":                   "dev8 ssh api",
		"#conn-ssh":                   "ssh dev8.api",
		"#conn-remote":                "dev8.api",
		`#env-actions > :first-child`: "Open VS Code",
		`#chart-disk figcaption span`: "Disk: files in /workspace",
	} {
		if got := p.eval(fmt.Sprintf(`document.querySelector(%q).textContent.trim()`, sel)); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if href := p.eval(`document.querySelector("#env-actions a[data-open=vscode]").getAttribute("href")`); href != env.VSCodeURL {
		t.Errorf("VS Code link %q, want %q", href, env.VSCodeURL)
	}
	if last := p.eval(`document.querySelector("#d-last").textContent`); last == "never" {
		t.Errorf("a running workspace's last active: %q", last)
	}
	p.check("environment-connect")

	// Fork: the snapshot's link opens the create page set to fork it.
	p.step("fork",
		chromedp.Click(chromedp.CSS(`#snapshots a[data-fork]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fork-note`)),
		chromedp.WaitVisible(chromedp.CSS(`#templates .choice[aria-checked=true]`)),
		waitFor(`document.querySelector("#env-name").value === "api-fork"`),
		// On its source's template.
		waitFor(`document.querySelector("#templates .choice[aria-checked=true]").dataset.value === "base"`),
	)
	p.check("new-fork")
	p.step("create the fork",
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#env-status[data-status=RUNNING]`)),
		waitFor(`document.querySelector("#env-name").textContent === "api-fork"`),
	)
	envs, err := ts.client(token).ListEnvironments(ts.ctx, sdk.EnvironmentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	forked := false
	for _, e := range envs.Environments {
		forked = forked || e.Name == "api-fork"
	}
	if !forked {
		t.Errorf("no api-fork among %+v", envs)
	}

	// Phone width: the navigation folds behind Menu; nothing overflows.
	p.step("phone", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(chromedp.CSS(`#menu-toggle`)), chromedp.WaitNotVisible(chromedp.CSS(`#signout`)))
	checkNoOverflow(t, p, "environment-phone")
	p.step("menu",
		chromedp.Click(chromedp.CSS(`#menu-toggle`)),
		chromedp.WaitVisible(chromedp.CSS(`#signout`)),
		chromedp.WaitVisible(chromedp.CSS(`#main-nav a[href="/settings"]`)),
	)
	checkNoOverflow(t, p, "menu-open-phone")
	for _, path := range []string{"/dashboard", "/new", "/settings", "/profile", "/docs", "/no-such-page"} {
		p.step("phone "+path, chromedp.Navigate(ts.url+path), chromedp.WaitVisible(chromedp.CSS(`#menu-toggle`)), waitFor(`document.readyState === "complete"`))
		p.problems.take() // the 404 page's own status
		checkNoOverflow(t, p, "phone"+strings.ReplaceAll(path, "/", "-"))
	}
	// Signed out, the few links stay in the header.
	p.step("sign out on the phone",
		chromedp.Click(chromedp.CSS(`#menu-toggle`)),
		chromedp.WaitVisible(chromedp.CSS(`#signout`)),
		chromedp.Click(chromedp.CSS(`#signout`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin-form`)),
	)
	for _, path := range []string{"/", "/signin", "/signup", "/docs", "/no-such-page"} {
		p.step("signed out, phone "+path, chromedp.Navigate(ts.url+path), chromedp.WaitVisible(chromedp.CSS(`.topbar a[href="/docs"]`)), waitFor(`document.readyState === "complete"`))
		p.problems.take()
		checkNoOverflow(t, p, "phone-signed-out"+strings.ReplaceAll(path, "/", "-"))
	}
}

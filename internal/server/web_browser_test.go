package server_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/sdk"
)

// browserProblems collects what a page reports that a person would call a
// bug: JavaScript exceptions, console errors, and the browser's own error
// log entries (CSP violations, failed loads).
type browserProblems struct {
	mu   sync.Mutex
	list []string
}

func (p *browserProblems) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, s)
}

func (p *browserProblems) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.list
	p.list = nil
	return out
}

func watchProblems(t *testing.T, tab context.Context) *browserProblems {
	t.Helper()
	p := &browserProblems{}
	if err := chromedp.Listen(tab, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			p.add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, desc))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.add("console.error: " + strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError && !expectedRefusal(ev.Entry.Text) {
				p.add("browser: " + ev.Entry.Text + " " + ev.Entry.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// expectedRefusal: Chromium logs every 4xx/5xx response of the page as an
// error; the test provokes one on purpose (another user's page, a 404).
func expectedRefusal(text string) bool {
	return strings.Contains(text, "status of 404")
}

// waitFor waits until the page's expression is true.
func waitFor(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		var v chromedp.Void
		return v, err
	}
}

// artifactsDir is where screenshots go: $DEV8_TEST_ARTIFACTS (CI keeps it)
// or the test's temp dir.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("DEV8_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboard drives the web dashboard in a real headless Chromium: sign
// up, create an environment from a template and watch it reach RUNNING
// without reloading, stop, start and delete it from the list, and find
// another user's environment page a 404. Every page is checked for script
// errors and unlabelled fields, and screenshotted.
func TestDashboard(t *testing.T) {
	t.Parallel()
	// Open signup: Ada signs up on the sign-up page by herself (following
	// an invite link is TestInviteLink).
	ts := startServer(t, "", func(c *server.Config) { c.Signup = signup.Open })
	// The first account is the admin, who may see every environment; Ada,
	// who signs up in the browser, is a member.
	ts.user("admin@example.com")
	tab := browser(t, context.Background())
	problems := watchProblems(t, tab)
	shots := artifactsDir(t)
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	defer cancel()

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			// Show what the page looked like: its text and a screenshot.
			shotCtx, cancel := context.WithTimeout(tab, 10*time.Second)
			defer cancel()
			text, _ := chromedp.Run(shotCtx, chromedp.Evaluate[string](`document.body.innerText`))
			if png, err := chromedp.Run(shotCtx, chromedp.FullScreenshot(100)); err == nil {
				_ = os.WriteFile(filepath.Join(shots, "failed-"+strings.ReplaceAll(name, " ", "-")+".png"), png, 0o644)
			}
			t.Fatalf("%s: %v\npage text:\n%s\nbrowser problems: %v", name, err, text, problems.take())
		}
	}
	// check looks at the page as it stands: no script errors so far, every
	// form field labelled; and keeps a screenshot of it.
	check := func(page string) {
		t.Helper()
		unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input, select, textarea")]
			.filter((e) => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
			.map((e) => e.id || e.name || e.outerHTML)`))
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		if len(unlabelled) > 0 {
			t.Errorf("%s: fields without a label: %v", page, unlabelled)
		}
		for _, p := range problems.take() {
			t.Errorf("%s: %s", page, p)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", page, err)
		}
		if err := os.WriteFile(filepath.Join(shots, page+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	step("landing", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(ts.url+"/"), chromedp.WaitVisible(chromedp.CSS(`a[href="/signup"]`)))
	check("landing")

	// A page that needs a session sends the visitor to sign in, and back.
	step("dashboard signed out",
		chromedp.Navigate(ts.url+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
	)
	check("signin")

	step("sign up",
		chromedp.Navigate(ts.url+"/signup"),
		chromedp.WaitVisible(chromedp.CSS("#signup-form")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
	)
	check("signup")
	step("submit sign up",
		chromedp.Click(chromedp.CSS(`#signup-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#empty")),
	)
	check("dashboard-empty")

	step("to create",
		chromedp.Click(chromedp.CSS(`#empty a[href="/new"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#templates .choice[aria-checked=true]`)),
		chromedp.WaitVisible(chromedp.CSS(`#instance-types .choice[aria-checked=true]`)),
	)
	// Live validation uses the API's rule for names.
	step("bad name",
		chromedp.SendKeys(chromedp.CSS("#env-name"), "Bad_Name"),
		chromedp.WaitVisible(chromedp.CSS("#name-error")),
	)
	check("new")
	step("create",
		chromedp.SendKeys(chromedp.CSS("#env-name"), strings.Repeat(kb.Backspace, len("Bad_Name"))+"web-env"),
		chromedp.WaitNotVisible(chromedp.CSS("#name-error")),
		chromedp.Click(chromedp.CSS(`#templates .choice[data-value="python"]`)),
		chromedp.Click(chromedp.CSS("#create-submit")),
		// RUNNING arrives over the event stream, and the progress view
		// moves on to the environment page by itself.
		chromedp.WaitVisible(chromedp.CSS(`body[data-page=environment] #env-status[data-status=RUNNING]`)),
	)
	step("environment page",
		waitFor(`location.pathname.startsWith("/environments/env_")`),
		chromedp.WaitVisible(chromedp.CSS(`#conn-vscode`)),
	)
	envID, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.environmentId`))
	if err != nil || !strings.HasPrefix(envID, "env_") {
		t.Fatalf("environment id on the page: %q %v", envID, err)
	}
	check("environment")

	// A snapshot taken from the page, followed to COMPLETED, and restored.
	step("snapshot",
		chromedp.WaitEnabled(chromedp.CSS("#snapshot-take")),
		chromedp.Click(chromedp.CSS("#snapshot-take")),
		chromedp.WaitVisible(chromedp.CSS(`#snapshots li[data-status=COMPLETED] button`)),
		chromedp.Click(chromedp.CSS(`#snapshots li[data-status=COMPLETED] button`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-restore")),
		chromedp.Click(chromedp.CSS("#restore-ok")),
		waitFor(`document.querySelector("#toast").textContent.startsWith("Restored")`),
	)
	check("environment-snapshots")

	// The web terminal runs a command, and a reload (a network blip)
	// reattaches to the same shell, whose recent output comes back.
	step("terminal",
		chromedp.Click(chromedp.CSS(`#env-actions a[href$="/terminal"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#terminal-state[data-state=open]`)),
		chromedp.WaitVisible(chromedp.CSS(`.xterm-helper-textarea`), chromedp.NodeReady),
		chromedp.Focus(chromedp.CSS(`.xterm-helper-textarea`)),
		// Typed as a paste: CDP's synthetic key events reach xterm.js twice
		// (keydown with text, then char), which a person's keyboard does not.
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: "echo hello-$((6*7))"})
			return err
		}),
		chromedp.KeyEvent(kb.Enter),
		waitFor(`document.querySelector(".xterm-rows").innerText.includes("hello-42")`),
	)
	check("terminal")
	step("terminal after a reload",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#terminal-state[data-state=open]`)),
		waitFor(`document.querySelector(".xterm-rows").innerText.includes("hello-42")`),
	)
	step("back", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS(`#env-status[data-status=RUNNING]`)))

	row := func(status string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q][data-status=%s]`, envID, status)))
	}
	step("dashboard",
		chromedp.Navigate(ts.url+"/dashboard"),
		row("RUNNING"),
	)
	check("dashboard")
	// At phone width the list still shows name, status and actions.
	step("phone width", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(chromedp.CSS(`tr button[data-action=stop]`)))
	check("dashboard-phone")
	step("laptop width", chromedp.EmulateViewport(1280, 800))
	step("stop", chromedp.Click(chromedp.CSS(`tr button[data-action=stop]`)), row("STOPPED"))
	step("start", chromedp.Click(chromedp.CSS(`tr button[data-action=start]`)), row("RUNNING"))
	step("delete, then cancel",
		chromedp.Click(chromedp.CSS(`tr button[data-action=delete]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
	)
	check("dashboard-confirm-delete")
	step("cancel", chromedp.Click(chromedp.CSS(`#confirm-delete button[value=cancel]`)), chromedp.WaitNotVisible(chromedp.CSS("#confirm-delete")), row("RUNNING"))
	step("delete",
		chromedp.Click(chromedp.CSS(`tr button[data-action=delete]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS("#empty")),
	)
	check("dashboard-after-delete")
	if code := ts.call("GET", "/api/v1/environments/"+envID, "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("sanity: unauthenticated GET = %d", code)
	}

	// Settings: an SSH key, an API token made and revoked, git identity, a
	// secret.
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " ada@laptop"
	step("settings",
		chromedp.Navigate(ts.url+"/settings"),
		chromedp.WaitVisible(chromedp.CSS(`#keys li`)),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "laptop"),
		chromedp.SetValue(chromedp.CSS("#key-value"), authorized),
		chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)),
		waitFor(fmt.Sprintf(`document.querySelector("#keys").innerText.includes(%q)`, ssh.FingerprintSHA256(sshPub))),
		chromedp.SendKeys(chromedp.CSS("#token-name"), "ci"),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#token-reveal")),
		waitFor(`document.querySelector("#tokens").innerText.includes("ci")`),
	)
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#token-secret")))
	if err != nil || secret == "" {
		t.Fatalf("the new token was not shown: %q %v", secret, err)
	}
	if _, err := ts.client(secret).Me(ts.ctx); err != nil {
		t.Fatalf("the token the page showed: GET /auth/me = %v", err)
	}
	check("settings")
	step("revoke the token",
		chromedp.Click(chromedp.CSS(`#tokens button[aria-label="Revoke token ci"]`)),
		waitFor(`!document.querySelector("#tokens").innerText.includes("ci")`),
	)
	if _, err := ts.client(secret).Me(ts.ctx); !isAPIError(err, http.StatusUnauthorized, "") {
		t.Fatalf("a revoked token: GET /auth/me = %v, want 401", err)
	}
	step("git and a secret",
		chromedp.SendKeys(chromedp.CSS("#git-name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS("#git-email"), "ada@example.com"),
		chromedp.Click(chromedp.CSS(`#git-form button[type=submit]`)),
		chromedp.SendKeys(chromedp.CSS("#secret-name"), "NPM_TOKEN"),
		chromedp.SendKeys(chromedp.CSS("#secret-value"), "s3cr3t-value"),
		chromedp.Click(chromedp.CSS(`#secret-form button[type=submit]`)),
		waitFor(`document.querySelector("#secrets").innerText.includes("NPM_TOKEN")`),
		chromedp.Reload(),
		waitFor(`document.querySelector("#git-name").value === "Ada Lovelace" && document.querySelector("#secrets").innerText.includes("NPM_TOKEN")`),
	)
	check("settings-filled")

	// A default auto-stop set in Settings applies to environments created
	// without one.
	step("default auto-stop",
		chromedp.SendKeys(chromedp.CSS("#default-auto-stop"), "120"),
		chromedp.Click(chromedp.CSS(`#defaults-form button[type=submit]`)),
		chromedp.Reload(),
		waitFor(`document.querySelector("#default-auto-stop").value === "120"`),
	)
	loginToken, _, err := ts.client("").Login(ts.ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	ada := ts.client(loginToken)
	created, err := ada.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "defaulted"})
	if err != nil || created.AutoStopMinutes != 120 {
		t.Fatalf("create without auto_stop_minutes: %+v, %v; want the user's default auto-stop 120", created, err)
	}
	if _, err := ada.Delete(ts.ctx, created.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}

	// Another user's environment page is a 404, like the API's answer.
	mallory, _ := ts.user("mallory@example.com")
	theirs := ts.create(mallory, sdk.CreateEnvironmentRequest{Name: "private"})
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(ts.url+"/environments/"+theirs.ID))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNotFound {
		t.Errorf("another user's environment page = %d, want 404", resp.Status)
	}
	step("not found page", chromedp.WaitVisible(chromedp.CSS(`a[href="/dashboard"]`)))
	check("notfound")

	step("sign out",
		chromedp.Navigate(ts.url+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#signout")),
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
	)
	step("signed out for real",
		chromedp.Navigate(ts.url+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
	)
	check("signed-out")
	t.Logf("screenshots in %s", shots)
}

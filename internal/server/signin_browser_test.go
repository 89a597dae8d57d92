package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
)

// hostileNext are ?next= values (as sent, percent-encoded) that would take
// a signed-in browser to another site if the page trusted them.
var hostileNext = []string{
	"/%5Cevil.example", "/%09/evil.example", "/%0A/evil.example", "%2F%2Fevil.example", "//evil.example",
	"/%5C/evil.example", "https://evil.example", "javascript:alert(1)", "/%E2%80%A8/evil.example",
	"%20//evil.example", "/%5C%09evil.example", "http:evil.example",
}

// TestSignInNextStaysOnSite: the sign-in page goes, after signing in, where
// the server says (httpmw.SafeNext, the one rule): a path of this site from
// ?next=, else the dashboard; a hostile next never leaves the site.
func TestSignInNextStaysOnSite(t *testing.T) {
	t.Parallel()
	// The sign-up page shows its form to anyone under the open policy.
	ts := startServer(t, "", func(c *server.Config) { c.Signup = signup.Open })
	ts.user("admin@example.com")
	ts.user("ada@example.com")
	p := newPageTest(t, 2*time.Minute)
	p.step("laptop", chromedp.EmulateViewport(1280, 800))

	// What the server hands each page.
	for _, next := range hostileNext {
		p.step("sign-in page with next="+next,
			chromedp.Navigate(ts.url+"/signin?next="+next),
			chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		)
		if got := p.eval(`document.querySelector("#signin-form").dataset.next`); got != "/dashboard" {
			t.Errorf("next=%s: the page would go to %q", next, got)
		}
	}
	p.step("sign-up page with a hostile next", chromedp.Navigate(ts.url+"/signup?next=/%5Cevil.example"), chromedp.WaitVisible(chromedp.CSS("#signup-form")))
	if got := p.eval(`document.querySelector("#signup-form").dataset.next`); got != "/dashboard" {
		t.Errorf("sign-up page: would go to %q", got)
	}

	// Signing in for real: the browser stays on this site.
	signInWith := func(next string) string {
		t.Helper()
		p.step("sign in with next="+next,
			chromedp.Navigate(ts.url+"/signin?next="+next),
			chromedp.WaitVisible(chromedp.CSS("#signin-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"),
			chromedp.SendKeys(chromedp.CSS("#password"), "correct horse"),
			chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)),
			// A signed-in page (this site's: another site would not have it).
			chromedp.WaitVisible(chromedp.CSS("#signout")),
			waitFor(`document.readyState === "complete"`),
			chromedp.WaitVisible(chromedp.CSS(".topbar a.me")),
		)
		return p.eval(`location.href`)
	}
	for _, next := range []string{"/%5Cevil.example", "/%09/evil.example"} {
		if got := signInWith(next); got != ts.url+"/dashboard" {
			t.Errorf("signed in with next=%s: at %s, want %s/dashboard", next, got, ts.url)
		}
		p.signOut()
	}
	if got := signInWith(url.QueryEscape("/settings?tab=keys")); got != ts.url+"/settings?tab=keys" {
		t.Errorf("signed in with next=/settings?tab=keys: at %s", got)
	}
	p.check("signin-next")
}

// TestSignInWithoutJavaScript: the sign-in and sign-up forms post; a
// browser without JavaScript never puts the password in a URL, and is sent
// back to the page, which says that it needs JavaScript.
func TestSignInWithoutJavaScript(t *testing.T) {
	t.Parallel()
	// The sign-up page shows its form to anyone under the open policy.
	ts := startServer(t, "", func(c *server.Config) { c.Signup = signup.Open })
	ts.user("admin@example.com")
	p := newPageTest(t, time.Minute)
	if _, err := chromedp.Call(p.tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"signin", "signup"} {
		p.step(page+" without JavaScript",
			chromedp.Navigate(ts.url+"/"+page+"?next=/settings"),
			chromedp.WaitVisible(chromedp.CSS("#"+page+"-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"),
			chromedp.SendKeys(chromedp.CSS("#password"), "secret-password-1"),
			chromedp.Submit(chromedp.CSS("#password")),
			chromedp.WaitVisible(chromedp.CSS("#"+page+"-form")),
			chromedp.WaitVisible(chromedp.CSS(`noscript, p.form-error[role=alert]`)),
		)
		loc, err := chromedp.Run(p.ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(loc, "secret-password-1") || strings.Contains(loc, "password=") {
			t.Fatalf("%s: the password went into the URL: %s", page, loc)
		}
		if loc != ts.url+"/"+page+"?next=/settings" {
			t.Errorf("%s: after the post the browser is at %s", page, loc)
		}
		p.check(page + "-no-javascript")
	}
	if _, err := ts.srv.Store.GetUserByEmail(ts.ctx, "ada@example.com"); err == nil {
		t.Error("a form posted without JavaScript made an account")
	}

	// The same over plain HTTP, for every page with such a form: the answer
	// sends the browser back to the page, and reads nothing.
	for _, path := range []string{"/signin?next=/settings", "/signup", "/profile", "/settings"} {
		form := url.Values{"email": {"ada@example.com"}, "password": {"secret-password-1"}}
		req, _ := http.NewRequestWithContext(ts.ctx, http.MethodPost, ts.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path || strings.Contains(string(body), "secret-password-1") || len(resp.Cookies()) != 0 {
			t.Errorf("POST %s: %d Location %q cookies %v\n%s", path, resp.StatusCode, resp.Header.Get("Location"), resp.Cookies(), body)
		}
	}
}

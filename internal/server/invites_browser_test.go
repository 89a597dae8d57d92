package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestInviteLink drives the invite flow in headless Chromium under the
// default signup policy: signed out, no page offers to sign up; the admin
// makes an invite for Ada on Admin → Invites and gets its link once; Ada
// follows it and finds the sign-up page with her address filled in and
// fixed, and becomes a member; the used link, a revoked one and a
// mistyped one each show a page that says why (HTML, never JSON).
func TestInviteLink(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ts.user("admin@example.com") // the first account: the admin
	p := newPageTest(t, 3*time.Minute)
	p.step("laptop", chromedp.EmulateViewport(1280, 800))

	// Signed out, nothing offers to sign up.
	p.step("landing", chromedp.Navigate(ts.url+"/"), chromedp.WaitVisible(chromedp.CSS(`.hero a[href="/signin"]`)))
	if n := p.eval(`String(document.querySelectorAll('a[href="/signup"]').length)`); n != "0" {
		t.Errorf("the landing page links to sign up %s times; signup is by invitation", n)
	}
	p.check("landing-invite-only")
	p.step("sign-in page", chromedp.Navigate(ts.url+"/signin"), chromedp.WaitVisible(chromedp.CSS("#signup-by-invite")))
	if n := p.eval(`String(document.querySelectorAll('a[href="/signup"]').length)`); n != "0" {
		t.Errorf("the sign-in page links to sign up %s times", n)
	}
	p.check("signin-invite-only")
	resp := p.navigate(ts.url + "/signup")
	if resp.Status != http.StatusForbidden || resp.MimeType != "text/html" {
		t.Errorf("/signup without an invite = %d %s, want the 403 page", resp.Status, resp.MimeType)
	}
	p.step("sign-up page without an invite", chromedp.WaitVisible(chromedp.CSS("#signup-closed")))
	if n := p.eval(`String(document.querySelectorAll("#signup-form").length)`); n != "0" {
		t.Error("the sign-up page shows a form nobody may use")
	}
	p.checkAllowing("signup-invite-only", "status of 403")

	// The admin invites Ada.
	p.signIn(ts.url, "admin@example.com", "correct horse")
	p.step("invites page",
		chromedp.Navigate(ts.url+"/admin"),
		chromedp.WaitVisible(chromedp.CSS(`.tabs a[href="/admin/invites"]`)),
		chromedp.Click(chromedp.CSS(`.tabs a[href="/admin/invites"]`)),
		chromedp.WaitVisible(chromedp.CSS("#invite-form")),
		waitFor(`document.querySelector("#invite-rows").innerText.includes("No pending invites")`),
	)
	p.check("admin-invites-empty")
	p.step("create an invite",
		chromedp.SendKeys(chromedp.CSS("#invite-email"), "ada@example.com"),
		chromedp.Click(chromedp.CSS(`#invite-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#invite-reveal")),
		waitFor(`document.querySelector("#invite-rows").innerText.includes("ada@example.com")`),
	)
	link := p.eval(`document.querySelector("#invite-link").textContent`)
	u, err := url.Parse(link)
	if err != nil || u.Scheme+"://"+u.Host != ts.url || u.Path != "/signup" || !strings.HasPrefix(u.Query().Get("invite"), "dev8inv_") {
		t.Fatalf("the page showed the link %q", link)
	}
	p.step("copy the link", chromedp.Click(chromedp.CSS("#invite-copy")), waitFor(`document.querySelector("#toast").textContent !== ""`))
	p.check("admin-invite-created")
	p.step("reload: the link is not shown again", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#invite-form")),
		waitFor(`document.querySelector("#invite-rows").innerText.includes("ada@example.com")`))
	if strings.Contains(p.eval(`document.body.innerHTML`), u.Query().Get("invite")) {
		t.Error("the invites page shows the token again")
	}
	// A second invite, revoked before anyone uses it.
	p.step("create another",
		chromedp.Click(chromedp.CSS(`#invite-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#invite-reveal")),
		waitFor(`document.querySelectorAll("#invite-rows tr[data-id]").length === 2`),
	)
	revokedLink := p.eval(`document.querySelector("#invite-link").textContent`)
	p.step("revoke it",
		chromedp.Click(chromedp.CSS(`#invite-rows button[aria-label="Revoke the invite for anyone with the link"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")),
	)
	p.check("admin-invite-revoke")
	p.step("confirm",
		chromedp.Click(chromedp.CSS("#revoke-ok")),
		waitFor(`document.querySelectorAll("#invite-rows tr[data-id]").length === 1`),
	)
	p.signOut()

	// Ada follows her link.
	resp = p.navigate(link)
	if resp.Status != http.StatusOK || resp.Headers["Referrer-Policy"] != "no-referrer" {
		t.Errorf("the invite's page = %d, Referrer-Policy %v; want 200 and no-referrer (its URL holds the token)", resp.Status, resp.Headers["Referrer-Policy"])
	}
	p.step("follow the invite", chromedp.WaitVisible(chromedp.CSS("#invite-note")))
	if email, ro := p.eval(`document.querySelector("#email").value`), p.eval(`String(document.querySelector("#email").readOnly)`); email != "ada@example.com" || ro != "true" {
		t.Errorf("the invite's page: email %q, read-only %s; want ada@example.com, fixed", email, ro)
	}
	p.step("sign up with it",
		chromedp.SendKeys(chromedp.CSS("#name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
	)
	p.check("signup-invited")
	p.step("submit",
		chromedp.Click(chromedp.CSS(`#signup-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#empty")),
	)
	token, me, err := ts.client("").Login(ts.ctx, "ada@example.com", "correct horse battery")
	if err != nil || token == "" || me.Role != "member" || me.Name != "Ada Lovelace" {
		t.Fatalf("Ada after signing up with the invite: %+v, %v", me, err)
	}
	p.signOut()

	// Links that no longer work say so, as pages.
	for _, c := range []struct {
		name, link string
		status     int
		says       string
	}{
		{"used", link, http.StatusGone, "used already"},
		{"revoked", revokedLink, http.StatusGone, "revoked"},
		{"mistyped", link[:len(link)-3], http.StatusNotFound, "no such invite"},
	} {
		resp := p.navigate(c.link)
		if resp.Status != int64(c.status) || resp.MimeType != "text/html" {
			t.Errorf("%s invite link = %d %s, want %d text/html", c.name, resp.Status, resp.MimeType, c.status)
		}
		p.step(c.name+" invite page", chromedp.WaitVisible(chromedp.CSS("#problem-details")))
		if text := p.eval(`document.querySelector("main").innerText`); !strings.Contains(text, "This invite cannot be used") || !strings.Contains(text, c.says) {
			t.Errorf("%s invite page says %q", c.name, text)
		}
		p.checkAllowing("invite-"+c.name, "status of")
	}
}

// navigate loads url and returns the main document's response.
func (p *pageTest) navigate(url string) *network.Response {
	p.t.Helper()
	resp, err := chromedp.Run(p.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.t.Fatalf("navigate to %s: %v", url, err)
	}
	return resp
}

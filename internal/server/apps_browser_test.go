package server_test

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/sdk"
)

// startServerOnLocalhost starts a server whose access URL is
// http://localhost:PORT: the dashboard's host is then the parent of every
// workspace app's host (*.localhost), the case where a cookie with a
// Domain attribute would reach them.
func startServerOnLocalhost(t *testing.T) (ts *testServer, dashboard string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dashboard = "http://localhost:" + port
	return wrap(t, devserver.Start(t, devserver.Options{Addr: "127.0.0.1:" + port, Config: func(c *server.Config) { c.AccessURL = dashboard }})), dashboard
}

// sentHeaders records the headers the browser really sends (after its
// cookie rules), by request URL. A redirect keeps its request's id, so a
// request is a list of hops: the k-th URL an id went to was sent with the
// headers of that id's k-th ExtraInfo event (one per hop that reaches the
// network, in order: a hop served from the cache has none, and none of
// these tests' responses may be cached). The two kinds of event come in
// either order. (Matched by id alone, the headers of a dashboard request
// were once taken for those of the app's sign-in it redirected to.)
type sentHeaders struct {
	mu     sync.Mutex
	hops   map[network.RequestID][]string
	extras map[network.RequestID][]*network.EventRequestWillBeSentExtraInfo
	// matched counts each id's hops already in sent.
	matched map[network.RequestID]int
	sent    []sentRequest
}

type sentRequest struct {
	url    string
	cookie string
}

func watchSentHeaders(t *testing.T, p *pageTest) *sentHeaders {
	t.Helper()
	s := &sentHeaders{
		hops:    map[network.RequestID][]string{},
		extras:  map[network.RequestID][]*network.EventRequestWillBeSentExtraInfo{},
		matched: map[network.RequestID]int{},
	}
	if err := chromedp.Listen(p.tab, func(ev any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var id network.RequestID
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			id = ev.RequestID
			s.hops[id] = append(s.hops[id], ev.Request.URL)
		case *network.EventRequestWillBeSentExtraInfo:
			id = ev.RequestID
			s.extras[id] = append(s.extras[id], ev)
		default:
			return
		}
		for k := s.matched[id]; k < len(s.hops[id]) && k < len(s.extras[id]); k++ {
			e := s.extras[id][k]
			cookie, _ := e.Headers["Cookie"].(string)
			if c, ok := e.Headers["cookie"].(string); ok {
				cookie = c
			}
			s.sent = append(s.sent, sentRequest{url: s.hops[id][k], cookie: cookie})
			s.matched[id] = k + 1
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(p.tab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// to lists the requests sent to host (host:port), with their cookies.
func (s *sentHeaders) to(host string) []sentRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sentRequest
	for _, r := range s.sent {
		if u, err := url.Parse(r.url); err == nil && u.Host == host {
			out = append(out, r)
		}
	}
	return out
}

// cookieNames are the names of the cookies the browser holds for rawURL.
func (p *pageTest) cookieNames(rawURL string) []string {
	p.t.Helper()
	res, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{rawURL}})
	if err != nil {
		p.t.Fatal(err)
	}
	var names []string
	for _, c := range res.Cookies {
		names = append(names, c.Name)
		if c.Name == "dev8_app_session" && (!c.HTTPOnly || strings.HasPrefix(c.Domain, ".")) {
			p.t.Errorf("the app session cookie for %s: %+v, want HttpOnly and host-only", rawURL, c)
		}
	}
	slices.Sort(names)
	return names
}

// await evaluates a promise in the page and returns what it resolves to.
func (p *pageTest) await(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// TestAppOriginInBrowser opens a workspace's app in headless Chromium from
// a dashboard served at localhost, the parent of the apps' hosts: the
// browser never sends the dashboard's cookies to the app's origin, a page
// there cannot read or use the dashboard's API with the user's session,
// and a used sign-in link sends the browser round for a fresh one.
func TestAppOriginInBrowser(t *testing.T) {
	t.Parallel()
	ts, dashboard := startServerOnLocalhost(t)
	ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	port := freePort(t)
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60), Ports: []sdk.Port{{Port: port}}})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	ts.startTestAppOn(token, env.ID, port)
	app := strconv.Itoa(port)
	origin := ts.appOrigin(env.ID, app)
	appHost := strings.TrimPrefix(origin, "http://")

	p := newPageTest(t, 3*time.Minute)
	sent := watchSentHeaders(t, p)
	p.signIn(dashboard, "ada@example.com", "correct horse")
	if names := p.cookieNames(dashboard + "/"); !slices.Contains(names, "dev8_session") || !slices.Contains(names, "dev8_csrf") {
		t.Fatalf("the dashboard's cookies: %v", names)
	}
	// The environment's page links the port it declares.
	p.step("the environment's page", chromedp.Navigate(dashboard+"/environments/"+env.ID), chromedp.WaitVisible(chromedp.CSS("#conn-ports a")))
	link := p.eval(`document.querySelector("#conn-ports a").getAttribute("href")`)
	if link != "/w/"+env.ID+"/ports/"+app+"/" {
		t.Errorf("the port's link: %q", link)
	}
	p.check("environment-ports")
	p.step("open the app from the dashboard",
		chromedp.Navigate(dashboard+link+"page"),
		chromedp.WaitVisible(chromedp.CSS("#app")),
	)
	if at := p.eval(`location.origin + location.pathname`); at != origin+"/page" {
		t.Fatalf("the app opened at %s, want %s/page", at, origin)
	}
	p.check("app-own-origin")

	// What the browser holds for the app's origin, and sent there.
	if names := p.cookieNames(origin + "/"); !slices.Equal(names, []string{"dev8_app_session"}) {
		t.Errorf("cookies the browser holds for %s: %v, want the app's session alone", origin, names)
	}
	if c := p.eval(`document.cookie`); strings.Contains(c, "dev8") {
		t.Errorf("the app's page reads cookies %q", c)
	}
	toApp := sent.to(appHost)
	if len(toApp) == 0 {
		t.Fatal("no request to the app's host was seen")
	}
	withSession := 0
	for _, r := range toApp {
		if strings.Contains(r.cookie, "dev8_session") || strings.Contains(r.cookie, "dev8_csrf") {
			t.Errorf("the browser sent the dashboard's cookie to the app: %s with %q", r.url, r.cookie)
		}
		if strings.Contains(r.cookie, "dev8_app_session=") {
			withSession++
		}
	}
	if withSession == 0 {
		t.Errorf("no request to the app carried its own session (is the watch of sent cookies blind?): %+v", toApp)
	}

	// The app's page tries the dashboard's API with the visitor's session.
	before := len(sent.to(strings.TrimPrefix(dashboard, "http://")))
	read := p.await(fmt.Sprintf(`(async () => {
		try {
			const r = await fetch(%q, { credentials: "include" });
			return "read " + r.status + " " + (await r.text());
		} catch (e) { return "blocked " + e.name; }
	})()`, dashboard+"/api/v1/auth/me"))
	if read != "blocked TypeError" {
		t.Errorf("a page of the app read the dashboard's API: %s", read)
	}
	deleted := p.await(fmt.Sprintf(`(async () => {
		try {
			const r = await fetch(%q, { method: "DELETE", credentials: "include" });
			return "sent " + r.status;
		} catch (e) { return "blocked " + e.name; }
	})()`, dashboard+"/api/v1/environments/"+env.ID))
	if deleted != "blocked TypeError" {
		t.Errorf("a page of the app called DELETE on the dashboard's API: %s", deleted)
	}
	p.await(fmt.Sprintf(`(async () => {
		await fetch(%q, { method: "POST", mode: "no-cors", credentials: "include", headers: { "Content-Type": "text/plain" }, body: '{"name":"stolen"}' });
		return "sent";
	})()`, dashboard+"/api/v1/tokens"))
	for _, r := range sent.to(strings.TrimPrefix(dashboard, "http://"))[before:] {
		if strings.Contains(r.cookie, "dev8_session") {
			t.Errorf("the app's page got the dashboard's session sent with %s (%q)", r.url, r.cookie)
		}
	}
	if got, err := ts.client(token).GetEnvironment(ts.ctx, env.ID); err != nil || got.Status != sdk.StatusRunning {
		t.Errorf("after the app's page called DELETE: %+v, %v", got, err)
	}
	if toks, err := ts.client(token).Tokens(ts.ctx); err != nil || slices.ContainsFunc(toks, func(tk sdk.APIToken) bool { return tk.Name == "stolen" }) {
		t.Errorf("the app's page made a token: %+v, %v", toks, err)
	}
	p.problems.take() // the refused calls, which the page provoked on purpose

	// A used sign-in link: round through the dashboard for a fresh one,
	// which lands on the app.
	ticket, err := ts.client(token).OpenApp(ts.ctx, env.ID, app, "/first")
	if err != nil {
		t.Fatal(err)
	}
	if resp := ts.fetch(ticket.URL); resp.StatusCode != 303 {
		t.Fatalf("using the ticket: %d", resp.StatusCode)
	}
	p.step("a used sign-in link",
		chromedp.Navigate(ticket.URL),
		waitFor(fmt.Sprintf(`location.origin === %q && document.body.innerText.includes('"Path":"/"')`, origin)),
	)
}

// TestAdminOpensMembersApp: an admin opening a member's app gets a warning
// page naming its owner, and nothing of the app's loads until the click;
// then the app opens on its own origin, with a session that holds none of
// the admin's rights.
func TestAdminOpensMembersApp(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	adminToken, _ := ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	app := strconv.Itoa(ts.startTestApp(token, env.ID))
	origin := ts.appOrigin(env.ID, app)

	p := newPageTest(t, 3*time.Minute)
	sent := watchSentHeaders(t, p)
	p.signIn(ts.url, "admin@example.com", "correct horse")
	p.step("a member's app",
		chromedp.Navigate(ts.url+"/w/"+env.ID+"/ports/"+app+"/page"),
		chromedp.WaitVisible(chromedp.CSS("#app-notice #open-app")),
	)
	if owner := p.eval(`document.querySelector("#notice-owner").textContent`); !strings.Contains(owner, "ada@example.com") {
		t.Errorf("the warning does not name the owner: %q", owner)
	}
	if origin := p.eval(`location.origin`); origin != ts.url {
		t.Errorf("the warning is at %s, want the dashboard", origin)
	}
	p.check("app-warning")
	if r := sent.to(strings.TrimPrefix(origin, "http://")); len(r) != 0 {
		t.Errorf("the app was reached before the click: %+v", r)
	}
	if names := p.cookieNames(origin + "/"); len(names) != 0 {
		t.Errorf("cookies for the app before the click: %v", names)
	}

	p.step("open it",
		waitFor(`document.readyState === "complete"`),
		chromedp.Click(chromedp.CSS("#open-app")),
		chromedp.WaitVisible(chromedp.CSS("#app")),
	)
	if at := p.eval(`location.origin + location.pathname`); at != origin+"/page" {
		t.Fatalf("the app opened at %s, want %s/page", at, origin)
	}
	p.check("app-opened-by-admin")
	// Its page cannot use the admin's rights.
	if got := p.await(fmt.Sprintf(`fetch(%q, { credentials: "include" }).then((r) => "read " + r.status, (e) => "blocked " + e.name)`, ts.url+"/api/v1/users")); got != "blocked TypeError" {
		t.Errorf("the member's page reached the admin API: %s", got)
	}
	p.problems.take()
	events, err := ts.client(adminToken).AuditEvents(ts.ctx, sdk.AuditFilter{Action: "environment.open_app", ObjectID: env.ID})
	if err != nil || len(events.Events) != 1 {
		t.Errorf("audit: %+v, %v; want one environment.open_app", events, err)
	}
	// The owner opens her own app without a warning.
	ownerOpen := ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"/page", "Cookie", "dev8_session="+token, "Accept", browserAccept)
	if ownerOpen.StatusCode != 303 || !strings.HasPrefix(ownerOpen.Header.Get("Location"), origin+"/__dev8/auth?ticket=") {
		t.Errorf("the owner's link: %d %q, want 303 to the app", ownerOpen.StatusCode, ownerOpen.Header.Get("Location"))
	}
	// Another client with the admin's cookie (not a page's navigation) is
	// refused rather than sent on.
	isJSONError(t, "the admin's cookie, not a navigation", ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"/page", "Cookie", "dev8_session="+adminToken), 403)
}

// TestPlantedCookieInBrowser: with the apps' domain under the dashboard's
// host (--wildcard-access-url *.dev8.localhost for a dashboard at
// dev8.localhost, as *.dev8.example.com under dev8.example.com), an app's
// page can set a session cookie for the dashboard's host. The dashboard
// then takes neither session, clears the planted cookie, and the visitor's
// own session works again: the app's owner never acts as the visitor.
func TestPlantedCookieInBrowser(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dashboard := "http://dev8.localhost:" + port
	ts := wrap(t, devserver.Start(t, devserver.Options{Addr: "127.0.0.1:" + port, Config: func(c *server.Config) {
		c.AccessURL = dashboard
		c.WildcardAccessURL = "*.dev8.localhost"
	}}))
	ts.user("admin@example.com")
	ts.user("ada@example.com")
	otherToken, _ := ts.user("mallory@example.com")
	env := ts.create(otherToken, sdk.CreateEnvironmentRequest{Name: "bait", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(otherToken, env.ID, sdk.StatusRunning)
	app := strconv.Itoa(ts.startTestApp(otherToken, env.ID))

	// Mallory's page, on her app's origin, plants her own session for the
	// dashboard's host (the victim's browser runs it: here, evaluated in
	// that page).
	p := newPageTest(t, 3*time.Minute)
	p.signIn(dashboard, "ada@example.com", "correct horse")
	ticket, err := ts.client(otherToken).OpenApp(ts.ctx, env.ID, app, "/page")
	if err != nil {
		t.Fatal(err)
	}
	p.step("mallory's page", chromedp.Navigate(ticket.URL), chromedp.WaitVisible(chromedp.CSS("#app")))
	if at := p.eval(`location.hostname`); at != app+"--"+strings.Replace(env.ID, "_", "-", 1)+".dev8.localhost" {
		t.Fatalf("the app is at %s", at)
	}
	p.eval(fmt.Sprintf(`document.cookie = "dev8_session=%s; Domain=dev8.localhost; Path=/api"; document.cookie`, otherToken))
	if names := p.cookieNames(dashboard + "/api/v1/auth/me"); len(names) < 2 {
		t.Fatalf("the planted cookie did not reach the dashboard's host (cookies: %v): the test proves nothing", names)
	}

	// Ada's dashboard: the request with both cookies is refused, the
	// planted one cleared; then she is herself again.
	p.step("the dashboard with the planted cookie", chromedp.Navigate(dashboard+"/api/v1/auth/me"))
	if body := p.eval(`document.body.innerText`); !strings.Contains(body, "Conflicting sessions") {
		t.Errorf("with the planted cookie: %s", body)
	}
	if names := p.cookieNames(dashboard + "/api/v1/auth/me"); countOf(names, "dev8_session") != 1 {
		t.Errorf("the planted cookie was not cleared: %v", names)
	}
	p.step("the dashboard again", chromedp.Navigate(dashboard+"/api/v1/auth/me"))
	if body := p.eval(`document.body.innerText`); !strings.Contains(body, "ada@example.com") {
		t.Errorf("after the planted cookie was cleared: %s", body)
	}
	p.problems.take()
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

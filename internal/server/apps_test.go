package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// Workspace apps on their own origins: the sign-in with a one-time ticket,
// the app's own session and what it is worth, and the pages on the way.
// (The browser's side: apps_browser_test.go.)

// noRedirects is a client over loopback (*.localhost names) that returns
// redirects instead of following them.
func noRedirects() *http.Client {
	return &http.Client{Transport: loopback.Transport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// appResponse is one answer read whole.
type appResponse struct {
	*http.Response
	body []byte
}

// send sends req without following redirects.
func (ts *testServer) send(req *http.Request) appResponse {
	ts.t.Helper()
	resp, err := noRedirects().Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return appResponse{resp, body}
}

// fetch is a GET of rawURL with headers (pairs of name and value).
func (ts *testServer) fetch(rawURL string, headers ...string) appResponse {
	ts.t.Helper()
	req, err := http.NewRequestWithContext(ts.ctx, "GET", rawURL, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return ts.send(req)
}

// appCookie signs token's user in to one of environment id's apps ("ide"
// or a port) as a browser would (a ticket from POST …/app-tickets,
// redeemed on the app's origin) and returns the app's session as a Cookie
// header value.
func (ts *testServer) appCookie(token, id, app string) string {
	ts.t.Helper()
	ticket, err := ts.client(token).OpenApp(ts.ctx, id, app, "/")
	if err != nil {
		ts.t.Fatalf("app ticket for %s %s: %v", id, app, err)
	}
	resp := ts.fetch(ticket.URL)
	for _, c := range resp.Cookies() {
		if c.Name == "dev8_app_session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	ts.t.Fatalf("redeeming %s: %d, no app session cookie (%q)", ticket.URL, resp.StatusCode, resp.Header.Values("Set-Cookie"))
	return ""
}

// appOrigin is the origin of environment id's app ("ide" or a port) on a
// test server (its access URL is on loopback: *.localhost).
func (ts *testServer) appOrigin(id, app string) string {
	ts.t.Helper()
	u, err := url.Parse(ts.url)
	if err != nil {
		ts.t.Fatal(err)
	}
	return "http://" + app + "--" + strings.Replace(id, "_", "-", 1) + ".localhost:" + u.Port()
}

// startTestApp runs the test app (devserver.HTTPDCommand) in environment
// id, from a terminal, on a free port, and waits until it answers through
// the port's app origin. It returns the port.
func (ts *testServer) startTestApp(token, id string) int {
	ts.t.Helper()
	port := freePort(ts.t)
	ts.startTestAppOn(token, id, port)
	return port
}

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTestAppOn is startTestApp on port.
func (ts *testServer) startTestAppOn(token, id string, port int) {
	ts.t.Helper()
	pty, err := ts.client(token).DialPTY(ts.ctx, id, sdk.PTYOptions{Command: devserver.HTTPDCommand("127.0.0.1:" + strconv.Itoa(port))})
	if err != nil {
		ts.t.Fatalf("start the test app: %v", err)
	}
	ts.t.Cleanup(func() { pty.Close() })
	app := strconv.Itoa(port)
	cookie := ts.appCookie(token, id, app)
	wait.Succeeds(ts.ctx, ts.t, "the test app to answer on its origin", func() error {
		if resp := ts.fetch(ts.appOrigin(id, app)+"/ready", "Cookie", cookie); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, resp.body)
		}
		return nil
	})
}

// TestAppSignIn follows the way to a workspace app on its own origin: the
// dashboard's link answers with a one-time ticket to the app's origin,
// which sets a host-only session cookie there and goes on; the app gets
// neither Dev8's cookies nor the Authorization header; a ticket works once,
// for its app, for a minute.
func TestAppSignIn(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	port := ts.startTestApp(token, env.ID)
	app := strconv.Itoa(port)
	origin := ts.appOrigin(env.ID, app)
	open := ts.url + "/w/" + env.ID + "/ports/" + app + "/echo?x=1"

	// The dashboard's link: a ticket for this app, on its origin.
	resp := ts.fetch(open, "Authorization", "Bearer "+token)
	ticketURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(ticketURL, origin+"/__dev8/auth?ticket=dev8t_") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %d Location %q, want 303 to %s/__dev8/auth?ticket=…", open, resp.StatusCode, ticketURL, origin)
	}
	// Redeemed: the app's own cookie, host-only, and on to the path.
	resp = ts.fetch(ticketURL)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "dev8_app_session" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/echo?x=1" || session == nil {
		t.Fatalf("redeem: %d Location %q cookies %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"))
	}
	if session.Domain != "" || session.Path != "/" || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.MaxAge < 0 {
		t.Errorf("app session cookie %q: want host-only (no Domain), Path=/, HttpOnly, SameSite=Lax, not Secure over http", resp.Header.Values("Set-Cookie"))
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("the ticket's page may leak it: Referrer-Policy %q", resp.Header.Get("Referrer-Policy"))
	}
	cookie := session.Name + "=" + session.Value

	// The app gets the request, without Dev8's cookies or credentials.
	resp = ts.fetch(origin+"/echo?x=1", "Cookie", cookie+"; dev8_session="+token+"; dev8_csrf=x; theirs=1", "Authorization", "Bearer "+token)
	var seen devserver.AppRequest
	if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &seen) != nil {
		t.Fatalf("the app: %d %s", resp.StatusCode, resp.body)
	}
	if seen.Path != "/echo?x=1" || seen.Cookie != "theirs=1" || seen.Authorization != "" || seen.Host != "localhost:"+app || seen.ForwardedHost != strings.TrimPrefix(origin, "http://") {
		t.Errorf("the app saw %+v", seen)
	}
	if csp := resp.Header.Values("Content-Security-Policy"); len(csp) != 1 || csp[0] != "frame-ancestors 'self'" {
		t.Errorf("the app's answer: CSP %q, want frame-ancestors 'self'", csp)
	}
	// Nor may the app set Dev8's cookies; its own it may.
	resp = ts.fetch(origin+"/set-cookie?name=dev8_app_session&value=forged", "Cookie", cookie)
	if got := resp.Header.Values("Set-Cookie"); resp.StatusCode != http.StatusOK || len(got) != 0 {
		t.Errorf("the app set Dev8's cookie: %d %q", resp.StatusCode, got)
	}
	resp = ts.fetch(origin+"/set-cookie?name=theirs&value=2", "Cookie", cookie)
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "theirs=2") {
		t.Errorf("the app's own cookie: %q", got)
	}

	// A ticket works once.
	resp = ts.fetch(ticketURL)
	isJSONError(t, "a used ticket", resp, http.StatusUnauthorized)
	// A browser is sent back through the dashboard for a fresh one, once;
	// then it gets a page.
	resp = ts.fetch(ticketURL, "Accept", browserAccept)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != ts.url+"/w/"+env.ID+"/ports/"+app+"/" {
		t.Errorf("a used ticket in a browser: %d Location %q, want 303 to the dashboard's link", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = ts.fetch(ticketURL, "Accept", browserAccept, "Cookie", "dev8_app_retry=1")
	isHTMLPage(t, "a used ticket, again", resp, http.StatusUnauthorized, "expired or was already used")

	// A ticket is for its app only, and spent by a refusal.
	ticket, err := ts.client(token).OpenApp(ts.ctx, env.ID, app, "/")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := strings.Replace(ticket.URL, origin, ts.appOrigin(env.ID, "8999"), 1)
	isJSONError(t, "another app's ticket", ts.fetch(elsewhere), http.StatusUnauthorized)
	isJSONError(t, "a ticket refused elsewhere", ts.fetch(ticket.URL), http.StatusUnauthorized)
	// And for a minute.
	ticket, err = ts.client(token).OpenApp(ts.ctx, env.ID, app, "/")
	if err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(61 * time.Second)
	isJSONError(t, "an expired ticket", ts.fetch(ticket.URL), http.StatusUnauthorized)
	resp = ts.fetch(origin+"/echo", "Cookie", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the session, a minute on: %d", resp.StatusCode)
	}

	// Nothing listening on a port: a browser gets a page that tries again
	// by itself; a program, the error.
	quiet := ts.appOrigin(env.ID, "8999")
	quietCookie := ts.appCookie(token, env.ID, "8999")
	resp = ts.fetch(quiet+"/", "Cookie", quietCookie, "Accept", browserAccept)
	isHTMLPage(t, "a port nothing listens on", resp, http.StatusBadGateway, "port 8999 is not answering yet")
	if !strings.Contains(string(resp.body), `http-equiv="refresh"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("the page does not refresh itself, or has no policy: %s %s", resp.Header.Get("Content-Security-Policy"), resp.body)
	}
	isJSONError(t, "a port nothing listens on, not a browser", ts.fetch(quiet+"/", "Cookie", quietCookie), http.StatusBadGateway)
	if css := ts.fetch(quiet + "/__dev8/static/app.css"); css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("the pages' stylesheet on an app's origin: %d %s", css.StatusCode, css.Header.Get("Content-Type"))
	}

	// The ticket's path must be a path on the app.
	for _, path := range []string{"//evil.example/", "/\\evil.example", "https://evil.example/", "evil"} {
		if _, err := ts.client(token).OpenApp(ts.ctx, env.ID, app, path); !isAPIError(err, http.StatusBadRequest, "VALIDATION_ERROR") {
			t.Errorf("path %q: %v, want 400", path, err)
		}
	}
	resp = ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"//evil.example/x", "Authorization", "Bearer "+token)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("//evil.example: %d %q", resp.StatusCode, loc)
	} else if landing := ts.fetch(loc).Header.Get("Location"); landing != "/" {
		t.Errorf("a link to //evil.example/x lands at %q, want /", landing)
	}
	for _, bad := range []string{"ide", "0", "65536", "x"} {
		if _, err := ts.client(token).OpenApp(ts.ctx, env.ID, bad, "/"); err == nil || (bad != "ide" && !isAPIError(err, http.StatusBadRequest, "VALIDATION_ERROR")) {
			t.Errorf("app %q: %v", bad, err)
		}
	}
}

// TestAppSessionScope: an app's session is good for that app alone, for as
// long as the sign-in it came from and the person's access last; it never
// reaches the dashboard's API; the dashboard's session is not taken on an
// app's origin.
func TestAppSessionScope(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	adminToken, _ := ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	otherToken, otherID := ts.user("mallory@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	port := ts.startTestApp(token, env.ID)
	app := strconv.Itoa(port)
	origin := ts.appOrigin(env.ID, app)
	cookie := ts.appCookie(token, env.ID, app)

	// Useless on the dashboard, and on any other app's origin.
	for _, path := range []string{"/api/v1/auth/me", "/api/v1/environments", "/api/v1/environments/" + env.ID} {
		isJSONError(t, "the app session on the dashboard's "+path, ts.fetch(ts.url+path, "Cookie", cookie), http.StatusUnauthorized)
	}
	isJSONError(t, "the app session on the IDE's origin", ts.fetch(ts.appOrigin(env.ID, "ide")+"/", "Cookie", cookie), http.StatusUnauthorized)
	isJSONError(t, "the app session on another port's origin", ts.fetch(ts.appOrigin(env.ID, "8999")+"/", "Cookie", cookie), http.StatusUnauthorized)
	// On its origin, the paths are the app's: no Dev8 API there.
	resp := ts.fetch(origin+"/api/v1/auth/me", "Cookie", cookie)
	var seen devserver.AppRequest
	if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &seen) != nil || seen.Path != "/api/v1/auth/me" {
		t.Errorf("/api/v1/auth/me on the app's origin: %d %s, want the app's own answer", resp.StatusCode, resp.body)
	}
	// The dashboard's session is not taken there: programs get 401, a
	// browser is sent to the dashboard to sign in to the app.
	isJSONError(t, "the dashboard's session on the app's origin", ts.fetch(origin+"/echo", "Cookie", "dev8_session="+token), http.StatusUnauthorized)
	isJSONError(t, "a bearer token on the app's origin", ts.fetch(origin+"/echo", "Authorization", "Bearer "+token), http.StatusUnauthorized)
	resp = ts.fetch(origin+"/echo?a=1", "Accept", browserAccept)
	if want := ts.url + "/w/" + env.ID + "/ports/" + app + "/echo?a=1"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("a browser without the app's session: %d %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// Apps' hosts are same-site with each other under a real domain, so a
	// browser sends this app's cookie along with another page's POST or
	// websocket: only the app's own pages, and the same person's other
	// apps, may change things in it.
	theirs := ts.create(otherToken, sdk.CreateEnvironmentRequest{Name: "theirs"})
	post := func(headers ...string) int {
		req, _ := http.NewRequestWithContext(ts.ctx, "POST", origin+"/echo", strings.NewReader("x"))
		req.Header.Set("Cookie", cookie)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return ts.send(req).StatusCode
	}
	for _, c := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"its own page", []string{"Origin", origin, "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"the same person's IDE", []string{"Origin", ts.appOrigin(env.ID, "ide"), "Sec-Fetch-Site", "same-site"}, http.StatusOK},
		{"a program", nil, http.StatusOK},
		{"another person's app", []string{"Origin", ts.appOrigin(theirs.ID, "8080"), "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"an app of no workspace", []string{"Origin", ts.appOrigin("env_aaaaaaaaaaaaaaaaaaaa", "8080")}, http.StatusForbidden},
		{"the dashboard", []string{"Origin", ts.url, "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"another site", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"a sandboxed page", []string{"Origin", "null", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"a browser without Origin", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
	} {
		if got := post(c.headers...); got != c.want {
			t.Errorf("POST from %s: %d, want %d", c.name, got, c.want)
		}
	}
	resp = ts.fetch(origin+"/ws", "Cookie", cookie, "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", ts.appOrigin(theirs.ID, "8080"))
	isJSONError(t, "a websocket from another person's app", resp, http.StatusForbidden)

	// Another person's workspace: 404 on the dashboard, whoever asks; no
	// app session can be had for it.
	isJSONError(t, "another user's link", ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"/", "Authorization", "Bearer "+otherToken), http.StatusNotFound)
	if _, err := ts.client(otherToken).OpenApp(ts.ctx, env.ID, app, "/"); !isAPIError(err, http.StatusNotFound, "NOT_FOUND") {
		t.Errorf("another user's ticket: %v, want 404", err)
	}
	resp = ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"/", "Accept", browserAccept, "Cookie", "dev8_session="+otherToken)
	isHTMLPage(t, "another user's link in a browser", resp, http.StatusNotFound, "Not found")
	// An app of no workspace: the 404 page on that origin.
	missing := ts.appOrigin("env_aaaaaaaaaaaaaaaaaaaa", "ide")
	isHTMLPage(t, "no such workspace", ts.fetch(missing+"/", "Accept", browserAccept), http.StatusNotFound, "No such workspace")
	isJSONError(t, "no such workspace, not a browser", ts.fetch(missing+"/"), http.StatusNotFound)
	u, _ := url.Parse(ts.url)
	for _, host := range []string{"ide--nope.localhost", "ide--env_aaaa.localhost", "0--env-aaaa.localhost"} {
		isHTMLPage(t, host, ts.fetch("http://"+host+":"+u.Port()+"/", "Accept", browserAccept), http.StatusNotFound, "No such workspace")
	}
	// A name under .localhost that is no app's is still the dashboard.
	if resp := ts.fetch("http://dev8.localhost:" + u.Port() + "/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("dev8.localhost/health: %d", resp.StatusCode)
	}

	// An admin reaches it too, with a session of its own, which ends with
	// the admin's rights: promoted, mallory may; demoted, her session is
	// a 404.
	if _, _, err := ts.client(adminToken).UpdateUser(ts.ctx, otherID, sdk.UserUpdate{Role: ptr("admin")}); err != nil {
		t.Fatal(err)
	}
	adminCookie := ts.appCookie(otherToken, env.ID, app)
	if resp := ts.fetch(origin+"/echo", "Cookie", adminCookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("an admin's app session: %d", resp.StatusCode)
	}
	// It holds no admin right on the dashboard.
	isJSONError(t, "an admin's app session on the dashboard", ts.fetch(ts.url+"/api/v1/users", "Cookie", adminCookie), http.StatusUnauthorized)
	events, err := ts.client(adminToken).AuditEvents(ts.ctx, sdk.AuditFilter{Action: "environment.open_app"})
	if err != nil || len(events.Events) == 0 || events.Events[0].ObjectID != env.ID || ptrValue(events.Events[0].ActorUserID) != otherID {
		t.Errorf("audit of an admin opening another's app: %+v, %v", events, err)
	}
	if _, _, err := ts.client(adminToken).UpdateUser(ts.ctx, otherID, sdk.UserUpdate{Role: ptr("member")}); err != nil {
		t.Fatal(err)
	}
	isJSONError(t, "a demoted admin's app session", ts.fetch(origin+"/echo", "Cookie", adminCookie), http.StatusNotFound)

	// The session ends with the sign-in it came from.
	second, _, err := ts.client("").Login(ts.ctx, "ada@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	short := ts.appCookie(second, env.ID, app)
	if resp := ts.fetch(origin+"/echo", "Cookie", short); resp.StatusCode != http.StatusOK {
		t.Fatalf("before logout: %d", resp.StatusCode)
	}
	if err := ts.client(second).Logout(ts.ctx); err != nil {
		t.Fatal(err)
	}
	resp = ts.fetch(origin+"/echo", "Cookie", short)
	isJSONError(t, "after logout", resp, http.StatusUnauthorized)
	if got := strings.Join(resp.Header.Values("Set-Cookie"), " "); !strings.Contains(got, "dev8_app_session=;") {
		t.Errorf("after logout the dead cookie is not cleared: %q", got)
	}
	// And with the person's suspension.
	adaID := env.UserID
	if _, _, err := ts.client(adminToken).UpdateUser(ts.ctx, adaID, sdk.UserUpdate{Suspended: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	isJSONError(t, "suspended", ts.fetch(origin+"/echo", "Cookie", cookie), http.StatusUnauthorized)
	if _, _, err := ts.client(adminToken).UpdateUser(ts.ctx, adaID, sdk.UserUpdate{Suspended: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if resp := ts.fetch(origin+"/echo", "Cookie", cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("unsuspended: %d", resp.StatusCode)
	}

	// A stopped workspace: programs get 409, a browser the dashboard's
	// page for it (which offers Start).
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	isJSONError(t, "stopped", ts.fetch(origin+"/echo", "Cookie", cookie), http.StatusConflict)
	resp = ts.fetch(origin+"/echo", "Cookie", cookie, "Accept", browserAccept)
	if want := ts.url + "/w/" + env.ID + "/ports/" + app + "/echo"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("stopped, in a browser: %d %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp = ts.fetch(ts.url+"/w/"+env.ID+"/ports/"+app+"/echo", "Cookie", "dev8_session="+token, "Accept", browserAccept)
	isHTMLPage(t, "the dashboard's page for a stopped workspace's app", resp, http.StatusConflict, "is not running")
}

func ptr[T any](v T) *T { return &v }

func ptrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func isJSONError(t *testing.T, name string, resp appResponse, status int) {
	t.Helper()
	var e sdk.ErrorResponse
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(resp.body, &e) != nil || e.Error == "" || e.Code == "" {
		t.Errorf("%s: %d %s %q, want a %d JSON error", name, resp.StatusCode, resp.Header.Get("Content-Type"), resp.body, status)
	}
}

func isHTMLPage(t *testing.T, name string, resp appResponse, status int, want string) {
	t.Helper()
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(resp.body), want) {
		t.Errorf("%s: %d %s, want a %d page with %q:\n%s", name, resp.StatusCode, resp.Header.Get("Content-Type"), status, want, resp.body)
	}
}

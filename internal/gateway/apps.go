package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
)

// Workspace apps on their own origins (see appurl and appauth). A browser
// reaches an app's origin signed in to it alone:
//
//  1. the dashboard's link (OpenPath: /w/{id}/ide/…, the environment's
//     vs_code_url) checks who asks, mints a one-time ticket and redirects
//     to the app's origin at TicketPath;
//  2. AppRedeem there takes the ticket (once), sets the app's own session
//     cookie and redirects to where the link pointed;
//  3. ServeApp serves the app to requests with that cookie (AppSession
//     checks it on each one).
//
// A browser without a valid cookie on the app's origin is sent back to
// step 1; one whose workspace is stopped, to the dashboard's page for it.

// TicketPath is where an app's origin redeems a sign-in ticket
// (?ticket=…).
const TicketPath = httpmw.AppReservedPrefix + "auth"

// retryCookie marks, for a minute, a browser the app's origin has sent
// back to the dashboard for a fresh ticket: if the next ticket fails too
// (a server restarted between mint and redemption, a clock gone wrong), it
// gets a page instead of another round.
const retryCookie = "dev8_app_retry"

// OpenPath is where the dashboard opens app at path (the path and query on
// the app's origin, from "/"): /w/{id}/ide/… for the IDE, the form of the
// environment's vs_code_url, and /w/{id}/ports/{port}/… for a port's app.
// Opening it signs the browser in to the app's origin.
func OpenPath(app appurl.App, path string) string {
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	if app.IsIDE() {
		return "/w/" + app.EnvironmentID + "/ide" + path
	}
	return "/w/" + app.EnvironmentID + "/ports/" + strconv.Itoa(app.Port) + path
}

// AppRedeem takes a sign-in ticket on an app's origin (GET
// /__dev8/auth?ticket=…): the browser gets the app's session cookie and
// goes where the ticket says. A ticket that is unknown, used, expired or
// another app's sends the browser back through the dashboard for a fresh
// one (once; then a page says so).
func (g *Gateway) AppRedeem(w http.ResponseWriter, r *http.Request) {
	ar, _ := httpmw.AppRequestFrom(r)
	// The ticket is in this URL: no page after it may learn it.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	grant, err := g.tickets.Redeem(r.URL.Query().Get("ticket"), ar.App)
	if err != nil {
		if _, again := r.Cookie(retryCookie); again == nil || !httpmw.WantsPage(r) {
			g.clearRetry(w, r, ar.Domain)
			g.appError(w, r, &httpapi.Error{Status: http.StatusUnauthorized, Code: httpapi.CodeUnauthorized, Message: "This sign-in link has expired or was already used",
				Details: "open the workspace again from the dashboard"}, ar.App, "/")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: retryCookie, Value: "1", Path: "/", MaxAge: 60, HttpOnly: true,
			Secure: r.TLS != nil || ar.Domain.Secure(), SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, g.dashboardURL(r)+OpenPath(ar.App, "/"), http.StatusSeeOther)
		return
	}
	value, expires := g.appSessions.Issue(grant)
	httpmw.SetAppCookie(w, r, ar.Domain, value, expires)
	g.clearRetry(w, r, ar.Domain)
	http.Redirect(w, r, grant.Path, http.StatusSeeOther)
}

func (g *Gateway) clearRetry(w http.ResponseWriter, r *http.Request, d appurl.Domain) {
	if _, err := r.Cookie(retryCookie); err == nil {
		http.SetCookie(w, &http.Cookie{Name: retryCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
			Secure: r.TLS != nil || d.Secure(), SameSite: http.SameSiteLaxMode})
	}
}

// ServeApp serves a workspace app on its own origin (any path but
// /__dev8/…) to the person AppSession admitted: the environment must be
// running (and, for the IDE, have code-server); a browser arriving at one
// that is not gets the dashboard's page for it, which offers to start it.
func (g *Gateway) ServeApp(w http.ResponseWriter, r *http.Request) {
	ar, _ := httpmw.AppRequestFrom(r)
	env := httpmw.Environment(r)
	ready := RequireRunning(env)
	if ar.App.IsIDE() {
		ready = IDEReady(env)
	}
	if ready != nil {
		g.appError(w, r, ready, ar.App, r.URL.RequestURI())
		return
	}
	t := proxyTarget{app: ar.App, path: r.URL.Path, rawPath: r.URL.RawPath, onError: func(w http.ResponseWriter, r *http.Request, err error) {
		g.appUnreachable(w, r, err, ar.App)
	}}
	if ar.App.IsIDE() {
		t.activityScript = appActivityScriptPath
	}
	g.proxy.ServeHTTP(w, withTarget(r, t))
}

// AppActivityScript and AppActivity are the IDE's activity script and its
// reports on the IDE's own origin; other apps have none.
func (g *Gateway) AppActivityScript(w http.ResponseWriter, r *http.Request) {
	if ar, _ := httpmw.AppRequestFrom(r); !ar.App.IsIDE() {
		g.AppNotFound(w, r)
		return
	}
	g.ActivityScript(w, r)
}

// AppActivity: see AppActivityScript.
func (g *Gateway) AppActivity(w http.ResponseWriter, r *http.Request) {
	if ar, _ := httpmw.AppRequestFrom(r); !ar.App.IsIDE() {
		g.AppNotFound(w, r)
		return
	}
	g.IDEActivity(w, r)
}

// AppRefused answers a browser's navigation on an app's origin that
// AppSession refused (httpmw.GuardPage): without a valid session (401) it
// goes to the dashboard to be signed in (there, to the sign-in page first
// if need be); an app that is not the person's, or not there, is the 404
// page.
func (g *Gateway) AppRefused(w http.ResponseWriter, r *http.Request, status int) {
	ar, _ := httpmw.AppRequestFrom(r)
	if status == http.StatusUnauthorized {
		http.Redirect(w, r, g.dashboardURL(r)+OpenPath(ar.App, r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	g.AppNotFound(w, r)
}

// AppNotFound is the 404 of an app's origin: no such app, or not the
// visitor's. A browser gets a page (it has no dashboard session here to
// show), anything else the API's error.
func (g *Gateway) AppNotFound(w http.ResponseWriter, r *http.Request) {
	if g.appPage != nil && httpmw.WantsPage(r) {
		g.appPage(w, r, http.StatusNotFound, httpmw.AppPage{
			Title:     "No such workspace",
			Message:   "Nothing is served at this address, or it is not yours to see. Workspaces are opened from the dashboard.",
			Dashboard: g.dashboardURL(r),
			Links:     []httpmw.PageLink{{Text: "Go to the dashboard", URL: g.dashboardURL(r) + "/dashboard"}},
		})
		return
	}
	g.writeError(w, r, httpapi.NotFound("Workspace app"))
}

// appError answers a request an app's origin cannot serve: a browser
// navigating to a workspace that is not running (or has no IDE) goes to
// the dashboard's page for it at the same path; a failed sign-in link gets
// a page; anything else the API's error.
func (g *Gateway) appError(w http.ResponseWriter, r *http.Request, err error, app appurl.App, path string) {
	if !httpmw.WantsPage(r) {
		g.writeError(w, r, err)
		return
	}
	open := g.dashboardURL(r) + OpenPath(app, path)
	var apiErr *httpapi.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized && g.appPage != nil {
		g.appPage(w, r, apiErr.Status, httpmw.AppPage{Title: apiErr.Message, Message: apiErr.Details + ".", Dashboard: g.dashboardURL(r),
			Links: []httpmw.PageLink{{Text: "Open " + app.String() + " again", URL: open}, {Text: "Go to the dashboard", URL: g.dashboardURL(r) + "/dashboard"}}})
		return
	}
	http.Redirect(w, r, open, http.StatusSeeOther)
}

// appUnreachable answers when the workspace did not take the request (its
// supervisor not connected yet, nothing listening on the port): a browser
// gets a page that tries again by itself.
func (g *Gateway) appUnreachable(w http.ResponseWriter, r *http.Request, err error, app appurl.App) {
	if g.appPage == nil || !httpmw.WantsPage(r) {
		g.writeError(w, r, err)
		return
	}
	e := httpapi.ToError(err)
	msg := e.Message
	if e.Details != "" {
		msg += ": " + e.Details
	}
	g.appPage(w, r, e.Status, httpmw.AppPage{
		Title:     app.String() + " is not answering yet",
		Message:   msg + ". This page tries again every few seconds.",
		Dashboard: g.dashboardURL(r),
		Refresh:   3 * time.Second,
		Links: []httpmw.PageLink{{Text: "Try again", URL: r.URL.RequestURI()},
			{Text: "Environment details", URL: g.dashboardURL(r) + "/environments/" + app.EnvironmentID}},
	})
}

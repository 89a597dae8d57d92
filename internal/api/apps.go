package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// Workspace apps (the IDE, HTTP servers on workspaces' ports) are served on
// origins of their own (appurl), which a browser signs in to with a
// one-time ticket the dashboard mints (appauth, gateway/apps.go). This file
// is the dashboard's side: /w/{id}/ide/… and /w/{id}/ports/{port}/… check
// who asks and send them on with a ticket, POST …/app-tickets mints one
// for a script, and the router that serves the apps' hosts (appsrouter.go).

// appsState is the configuration and state of workspace apps.
type appsState struct {
	// wildcard is --wildcard-access-url ("" for the default).
	wildcard string
	// pathBased serves the IDE under /w/{id}/ide/ on the dashboard's own
	// origin instead (--unsafe-path-based-apps).
	pathBased bool
	tickets   *appauth.Tickets
	sessions  *appauth.Sessions
	// domain is the apps' domain as resolved from the access URL
	// (SetPublicURL); nil before.
	domain atomic.Pointer[resolvedDomain]
}

type resolvedDomain struct {
	domain appurl.Domain
	err    error
}

func (a *API) initApps(cfg Config, sessionKey []byte) {
	a.apps.wildcard = cfg.WildcardAccessURL
	a.apps.pathBased = cfg.PathBasedApps
	a.apps.tickets = appauth.NewTickets(0, a.now)
	a.apps.sessions = appauth.NewSessions(auth.DeriveKey(sessionKey, "app-session"), 0, a.now)
}

// setAppDomain resolves the apps' domain for the access URL.
func (a *API) setAppDomain(accessURL string) {
	d, err := appurl.Resolve(accessURL, a.apps.wildcard)
	a.apps.domain.Store(&resolvedDomain{domain: d, err: err})
}

// AppDomain is where workspace apps are served, once SetPublicURL has
// told the API its access URL; an error says why they cannot be (an access
// URL on an IP address that is not loopback, with no wildcard set).
func (a *API) AppDomain() (appurl.Domain, error) {
	if p := a.apps.domain.Load(); p != nil {
		return p.domain, p.err
	}
	return appurl.Domain{}, errors.New("the access URL is not known yet")
}

// appDomainFor is the apps' domain for r: as SetPublicURL resolved it, or,
// in a server that was never told its access URL (the API alone in tests),
// from the host r was addressed to.
func (a *API) appDomainFor(r *http.Request) (appurl.Domain, error) {
	if p := a.apps.domain.Load(); p != nil {
		return p.domain, p.err
	}
	return appurl.Resolve(a.publicURL(r), a.apps.wildcard)
}

// PathBasedApps reports whether the IDE is served on the dashboard's
// origin (--unsafe-path-based-apps).
func (a *API) PathBasedApps() bool { return a.apps.pathBased }

var errNoAppDomain = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable, Message: "Workspace apps cannot be served here",
	Details: appurl.ErrNoDomain.Error()}

// openIDE is GET /w/{id}/ide/… : the way to the IDE on its own origin
// (openApp). (With --unsafe-path-based-apps the IDE itself is served there
// instead: gateway.IDE.)
func (a *API) openIDE(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	a.openApp(w, r, appurl.App{EnvironmentID: env.ID}, "/"+chi.URLParam(r, "*"))
}

// openPort is GET /w/{id}/ports/{port}/… : the way to the HTTP server on
// that port of the workspace, on its own origin (openApp).
func (a *API) openPort(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	port, ok := appurl.ParseName(chi.URLParam(r, "port"))
	if !ok || port == 0 {
		a.writeError(w, r, httpapi.Validation("port: must be a number from 1 to 65535"))
		return
	}
	a.openApp(w, r, appurl.App{EnvironmentID: env.ID, Port: port}, "/"+chi.URLParam(r, "*"))
}

// portRedirect sends /w/{id}/ports/{port} to …/{port}/, keeping the query.
func portRedirect(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Path + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

// openApp sends the caller to app on its own origin at path, signed in to
// it with a fresh ticket (a 303 to the app's TicketPath); the routes take
// GET and HEAD only. A browser gets pages where the app cannot be opened: the IDE page
// for a workspace that is not running (it offers Start), and — for an
// admin opening someone else's workspace — a warning that opens it only
// on a click; the app's session then carries none of the admin's rights.
func (a *API) openApp(w http.ResponseWriter, r *http.Request, app appurl.App, path string) {
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	path = httpmw.SafeNext(path, "/")
	env := httpmw.Environment(r)
	if err := appReady(env, app); err != nil {
		a.openError(w, r, app, err)
		return
	}
	domain, err := a.appDomainFor(r)
	if err != nil {
		a.openError(w, r, app, errNoAppDomain)
		return
	}
	user := mustUser(r.Context())
	if sess, ok := auth.SessionFrom(r.Context()); ok && sess.Cookie && env.UserID != user.ID {
		// An admin's browser, on someone else's workspace: never silently.
		a.foreignApp(w, r, app, path, domain)
		return
	}
	ticket, err := a.mintAppTicket(r, env, app, path, domain)
	if err != nil {
		a.openError(w, r, app, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, ticket.URL, http.StatusSeeOther)
}

// foreignApp answers an admin's browser opening another person's app: a
// page that names the owner and warns, and opens it only when its button
// is pressed (POST …/app-tickets, with the session's CSRF token). Requests
// that are not a navigation get a 403 saying so.
func (a *API) foreignApp(w http.ResponseWriter, r *http.Request, app appurl.App, path string, domain appurl.Domain) {
	env := httpmw.Environment(r)
	if a.pages == nil || !httpmw.WantsPage(r) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Confirm first",
			Details: "this workspace is another person's: open it from its page, or ask for a link with POST /api/v1/environments/" + env.ID + "/app-tickets"})
		return
	}
	owner, err := a.store.GetUser(r.Context(), env.UserID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("load the environment's owner: %w", err))
		return
	}
	origin, _ := domain.Origin(app)
	a.pages.AppNotice(w, r, http.StatusOK, httpmw.AppNotice{App: app, Owner: owner, Path: path, Origin: origin})
}

// openError answers a request that cannot open app: a browser gets the IDE
// page (not running, no IDE: it offers Start) or the page that says why;
// anything else the API's error.
func (a *API) openError(w http.ResponseWriter, r *http.Request, app appurl.App, err error) {
	if a.pages == nil || !httpmw.WantsPage(r) {
		a.writeError(w, r, err)
		return
	}
	var apiErr *httpapi.Error
	if app.IsIDE() && errors.As(err, &apiErr) && (apiErr.Code == httpapi.CodeInvalidState || apiErr.Status == http.StatusNotFound) {
		a.gateway.IDEError(w, r, err)
		return
	}
	e := httpapi.ToError(err)
	reason := e.Message
	if e.Details != "" {
		reason += ": " + e.Details
	}
	env := httpmw.Environment(r)
	owner := mustUser(r.Context())
	if env.UserID != owner.ID {
		if u, err := a.store.GetUser(r.Context(), env.UserID); err == nil {
			owner = u
		}
	}
	a.pages.AppNotice(w, r, e.Status, httpmw.AppNotice{App: app, Owner: owner, Blocked: reason})
}

// appReady is nil when app can be opened: its environment runs (and, for
// the IDE, has code-server).
func appReady(env store.Environment, app appurl.App) error {
	if app.IsIDE() {
		return gateway.IDEReady(env)
	}
	return gateway.RequireRunning(env)
}

// mintAppTicket makes a one-time ticket to app at path for the caller,
// bound to the sign-in the request was made with, and returns the URL that
// redeems it on the app's origin. An admin's ticket to someone else's app
// is audited.
func (a *API) mintAppTicket(r *http.Request, env store.Environment, app appurl.App, path string, domain appurl.Domain) (sdk.AppTicket, error) {
	user := mustUser(r.Context())
	var parent appauth.Parent
	if sess, ok := auth.SessionFrom(r.Context()); ok {
		parent = appauth.Parent{Kind: appauth.ParentSession, ID: sess.ID}
	} else if id, ok := auth.APITokenFrom(r.Context()); ok {
		parent = appauth.Parent{Kind: appauth.ParentToken, ID: id}
	} else {
		return sdk.AppTicket{}, errors.New("mint app ticket: the request has no sign-in")
	}
	origin, ok := domain.Origin(app)
	if !ok {
		return sdk.AppTicket{}, fmt.Errorf("environment id %q cannot be a host name", env.ID)
	}
	ticket, expires, err := a.apps.tickets.Mint(appauth.Grant{App: app, UserID: user.ID, Parent: parent, Path: path})
	if errors.Is(err, appauth.ErrTooMany) {
		return sdk.AppTicket{}, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable, Message: "Too many sign-ins at once", Details: err.Error()}
	}
	if err != nil {
		return sdk.AppTicket{}, err
	}
	if env.UserID != user.ID {
		a.audit(r, "environment.open_app", "environment", env.ID, true, map[string]any{"name": env.Name, "owner_id": env.UserID, "app": app.Name()})
	}
	return sdk.AppTicket{URL: origin + gateway.TicketPath + "?ticket=" + ticket, ExpiresAt: expires}, nil
}

// createAppTicket is POST /api/v1/environments/{id}/app-tickets: a
// one-time sign-in link to one of the environment's apps, for the owner or
// an admin (the button on an admin's warning page, or a script).
func (a *API) createAppTicket(w http.ResponseWriter, r *http.Request) {
	var req sdk.AppTicketRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	port, ok := appurl.ParseName(req.App)
	if !ok {
		a.writeError(w, r, httpapi.Validation(`app: must be "ide" or a port number from 1 to 65535`))
		return
	}
	if req.Path == "" {
		req.Path = "/"
	}
	if httpmw.SafeNext(req.Path, "/") != req.Path {
		a.writeError(w, r, httpapi.Validation(`path: must be a path on the app starting with "/" (not "//"), at most `+strconv.Itoa(httpmw.MaxNextLength)+" characters"))
		return
	}
	env := httpmw.Environment(r)
	app := appurl.App{EnvironmentID: env.ID, Port: port}
	if err := appReady(env, app); err != nil {
		a.writeError(w, r, err)
		return
	}
	domain, err := a.appDomainFor(r)
	if err != nil {
		a.writeError(w, r, errNoAppDomain)
		return
	}
	ticket, err := a.mintAppTicket(r, env, app, req.Path, domain)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusCreated, ticket)
}

// pathAppsGuard keeps path-based IDEs (--unsafe-path-based-apps) from an
// admin's browser on someone else's workspace: there the workspace's pages
// run on the dashboard's origin, with the admin's session. Bearer clients
// send their credential on purpose and pass.
func (a *API) pathAppsGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := httpmw.Environment(r)
		user := mustUser(r.Context())
		if sess, ok := auth.SessionFrom(r.Context()); !ok || !sess.Cookie || env.UserID == user.ID {
			next.ServeHTTP(w, r)
			return
		}
		refusal := &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not opened with your session",
			Details: "this server serves IDEs on the dashboard's own origin (--unsafe-path-based-apps), where another person's workspace would act with your session and admin rights; turn that off to open it on its own origin"}
		a.openError(w, r, appurl.App{EnvironmentID: env.ID}, refusal)
	})
}

package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
)

// hostRouter serves a request to a workspace app's host with apps, and
// everything else with the dashboard's router (whose routes it reports as
// its own: chi.Walk sees the dashboard's).
type hostRouter struct {
	*chi.Mux
	apps  http.Handler
	isApp func(r *http.Request) bool
}

func (h *hostRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.isApp(r) {
		h.apps.ServeHTTP(w, r)
		return
	}
	h.Mux.ServeHTTP(w, r)
}

// isAppHost reports whether r is for a workspace app's origin: a host
// directly under the apps' domain with an app's "--" in its label (an
// ill-formed one gets the apps' 404 page). The dashboard's own host never
// is one.
func (a *API) isAppHost(r *http.Request) bool {
	d, err := a.appDomainFor(r)
	return err == nil && d.Claims(r.Host)
}

// IsAppHost reports whether a Host header names a workspace app the
// server serves: a well-formed app label under the apps' domain. The
// server's host check (httpmw.AllowHostsOr) lets these through.
func (a *API) IsAppHost(hostport string) bool {
	d, err := a.AppDomain()
	if err != nil {
		return false
	}
	_, ok := d.Match(hostport)
	return ok
}

// appsRouter serves workspace apps' own origins: the sign-in ticket's
// redemption, the IDE's activity reports and everything else, which is the
// app (gateway/apps.go). Only the app's own session cookie is taken here
// (httpmw.Auth.AppSession); the dashboard's is never sent to these hosts,
// and the API is not served on them.
func (a *API) appsRouter() http.Handler {
	r := chi.NewRouter()
	r.Use(httpmw.ObserveRequests(a.requests), httpmw.RequestID, httpmw.EchoRequestID, httpmw.Recover(a.log), httpmw.LogAppRequests(a.log),
		httpmw.AppSecurityHeaders, a.throttles.ByAddress, a.appRequest)
	r.NotFound(a.gateway.AppNotFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusMethodNotAllowed, Code: httpapi.CodeMethodNotAllowed, Message: "Method not allowed", Details: r.Method + " " + r.URL.Path})
	})
	if a.pages != nil {
		r.Get(httpmw.AppAssetPath("*"), a.pages.AppAsset)
	}
	r.Get(gateway.TicketPath, a.gateway.AppRedeem)
	r.Group(func(r chi.Router) {
		// A browser's navigation that AppSession refuses goes to the
		// dashboard to sign in (401) or gets the 404 page; anything else
		// gets the API's JSON.
		r.Use(httpmw.PageOr(func(next http.Handler) http.Handler {
			return httpmw.GuardPage(a.authn.AppSession, next, a.gateway.AppRefused)
		}, a.authn.AppSession))
		r.Get(httpmw.AppReservedPrefix+"activity.js", a.gateway.AppActivityScript)
		r.Post(httpmw.AppReservedPrefix+"activity", a.gateway.AppActivity)
		// The app's requests are proxied as long as they last; its
		// websockets count among the person's streams, and all of them
		// end with the sign-in they were opened through (TrackLiveApp).
		r.With(httpmw.LongLived, a.authn.TrackLiveApp, a.streams.HoldUpgrades).HandleFunc("/*", a.serveApp)
	})
	return r
}

// serveApp is the app itself: any path but the ones Dev8 keeps
// (/__dev8/…, which are its 404 when not one of the above).
func (a *API) serveApp(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, httpmw.AppReservedPrefix) {
		a.gateway.AppNotFound(w, r)
		return
	}
	a.gateway.ServeApp(w, r)
}

// appRequest reads the app a request's host names into its context
// (httpmw.AppRequestFrom); a host that is no app, or an app of no
// environment that can exist, is the 404.
func (a *API) appRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := a.appDomainFor(r)
		app, ok := d.Match(r.Host)
		if err != nil || !ok {
			a.gateway.AppNotFound(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(httpmw.WithAppRequest(r.Context(), httpmw.AppRequest{App: app, Domain: d})))
	})
}

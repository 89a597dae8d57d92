package httpmw

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/store"
)

// PageGuard is what the web dashboard's routes use to authenticate, with
// the same rules as the API: RequireUser admits a signed-in person (the
// session cookie) and sends anyone else to the sign-in page;
// LoadEnvironment then loads {id} for them, answering NotFound for an
// environment that is missing or someone else's.
//
// OptionalUser is for public pages (the docs): a signed-in visitor's user
// is in the context, so the header can be theirs; anyone else sees the
// page signed out.
type PageGuard struct {
	RequireUser     func(http.Handler) http.Handler
	LoadEnvironment func(http.Handler) http.Handler
	OptionalUser    func(http.Handler) http.Handler
}

// Pages is the web dashboard, served from the API's router so that it
// shares its middleware (request ids, logging, throttles, headers). It is
// defined here, not in the API, so that the pages need only the
// middleware.
type Pages interface {
	// Routes mounts the pages.
	Routes(r chi.Router, guard PageGuard)
	// NotFound renders the page for a path nothing serves.
	NotFound(w http.ResponseWriter, r *http.Request)
	// IDEUnavailable renders the page a browser gets instead of the IDE
	// of the environment loaded for r (Environment(r)) when the IDE cannot
	// be shown: the environment is not running (the page offers to start
	// it and opens the IDE once it runs), has no IDE, or problem says why
	// it did not answer.
	IDEUnavailable(w http.ResponseWriter, r *http.Request, problem error)
	// Problem renders a page that says why what the browser navigated to
	// cannot be done (a sign-in that failed, a link that no longer works),
	// with status, instead of the API's JSON error.
	Problem(w http.ResponseWriter, r *http.Request, status int, title, details string)
	// AppNotice renders the dashboard's page in place of opening a
	// workspace app (the environment loaded for r's): the warning an admin
	// gets before opening someone else's, with a button that opens it, or
	// why it cannot be opened from here (n.Blocked).
	AppNotice(w http.ResponseWriter, r *http.Request, status int, n AppNotice)
	// AppPage renders a page on a workspace app's own origin, where there
	// is no dashboard session and no dashboard script: no such app, a
	// sign-in link that expired, an app that does not answer.
	AppPage(w http.ResponseWriter, r *http.Request, status int, p AppPage)
	// AppAsset serves, on an app's origin, the files AppPage's pages load
	// (at AppAssetPath(name)).
	AppAsset(w http.ResponseWriter, r *http.Request)
}

// AppNotice is what AppNotice says.
type AppNotice struct {
	App appurl.App
	// Owner is whose workspace it is.
	Owner store.User
	// Path is where on the app's origin it opens (path and query), and
	// Origin that origin.
	Path, Origin string
	// Blocked says why the app cannot be opened from here; empty, the page
	// offers to open it.
	Blocked string
}

// AppPage is a page on an app's own origin.
type AppPage struct {
	Title, Message string
	// Dashboard is the dashboard's URL (the server's access URL): the
	// page's links are absolute.
	Dashboard string
	// Links lead on: back to the dashboard, try again. The first is the
	// primary one.
	Links []PageLink
	// Refresh, if not zero, reloads the page after that long.
	Refresh time.Duration
}

// PageLink is a link a page offers.
type PageLink struct{ Text, URL string }

// AppReservedPrefix starts the paths an app's origin keeps for Dev8 (its
// sign-in, its activity reports, its pages' files); everything else is the
// workspace's.
const AppReservedPrefix = "/__dev8/"

// AppAssetPath is where an app's origin serves Dev8's file name.
func AppAssetPath(name string) string { return AppReservedPrefix + "static/" + name }

// WantsPage reports whether r is a browser navigating to a page, which
// should get HTML (a sign-in page, a 404 page) rather than the API's JSON
// errors: a GET that accepts text/html, without an Authorization header
// (API clients send one), not a websocket handshake, and not asking for
// JSON first.
func WantsPage(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" || IsWebsocketHandshake(r) {
		return false
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mediaType, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mediaType)) {
		case "text/html", "application/xhtml+xml":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

// PageOr runs a request a browser navigates to (WantsPage) through page's
// middleware and any other through api's: the same route answers a person
// with pages and a program with JSON.
func PageOr(page, api func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		p, a := page(next), api(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if WantsPage(r) {
				p.ServeHTTP(w, r)
				return
			}
			a.ServeHTTP(w, r)
		})
	}
}

// SignInPath is where pages send a visitor who is not signed in.
const SignInPath = "/signin"

// PageGuard is the guard for pages; notFound renders a page's 404.
func (a *Auth) PageGuard(notFound http.Handler) PageGuard {
	return PageGuard{
		RequireUser: func(next http.Handler) http.Handler {
			auth := a.Authenticate(a.RequireUser(passed(next)))
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth.ServeHTTP(&pageRefusal{ResponseWriter: w, onRefuse: func(status int) {
					target := SignInPath + "?next=" + url.QueryEscape(r.URL.RequestURI())
					http.Redirect(w, r, target, http.StatusSeeOther)
				}}, r)
			})
		},
		OptionalUser: func(next http.Handler) http.Handler {
			auth := a.Authenticate(a.RequireUser(passed(next)))
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := r.Cookie(a.cookies.SessionCookieName(r)); err != nil {
					next.ServeHTTP(w, r) // no session: nothing to look up
					return
				}
				auth.ServeHTTP(&pageRefusal{ResponseWriter: w, onRefuse: func(int) {
					next.ServeHTTP(w, r)
				}}, r)
			})
		},
		LoadEnvironment: func(next http.Handler) http.Handler {
			load := a.LoadEnvironment(passed(next))
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				load.ServeHTTP(&pageRefusal{ResponseWriter: w, onRefuse: func(int) {
					notFound.ServeHTTP(w, r)
				}}, r)
			})
		},
	}
}

// passed hands the page the real writer once its guard let it through, so
// the page's own statuses (its 404s) are its own.
func passed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := w.(*pageRefusal); ok {
			w = p.ResponseWriter
		}
		next.ServeHTTP(w, r)
	})
}

// pageRefusal turns the API's JSON refusal (401, 403 or 404, written by the
// guard before the page had a chance to write anything) into what a browser
// should see instead: onRefuse writes it. Anything else passes through.
type pageRefusal struct {
	http.ResponseWriter
	onRefuse func(status int)
	refused  bool
}

func (p *pageRefusal) WriteHeader(status int) {
	if p.refused {
		return
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		p.refused = true
		// The API's JSON headers must not describe the page.
		p.ResponseWriter.Header().Del("Content-Type")
		p.onRefuse(status)
		return
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *pageRefusal) Write(b []byte) (int, error) {
	if p.refused {
		return len(b), nil // the JSON body of the refusal
	}
	return p.ResponseWriter.Write(b)
}

func (p *pageRefusal) Unwrap() http.ResponseWriter { return p.ResponseWriter }

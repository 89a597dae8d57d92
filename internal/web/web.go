// Package web is Dev8's dashboard: server-rendered pages with a little
// JavaScript, embedded in the binary and served from the API's router. The
// pages hold no second implementation of anything: every action and every
// piece of data goes through the JSON API (/api/v1), with the session
// cookie and the CSRF token, exactly as any other client's would.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
)

//go:embed templates static
var files embed.FS

// contentSecurityPolicy allows the pages only what they use: their own
// scripts, styles and images, and calls to this server.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// terminalPolicy is contentSecurityPolicy with inline styles allowed: xterm.js
// styles its rows and theme with <style> elements it writes at run time.
// Scripts stay as strict.
var terminalPolicy = strings.Replace(contentSecurityPolicy, "style-src 'self'", "style-src 'self' 'unsafe-inline'", 1)

// Site serves the pages.
type Site struct {
	log    *slog.Logger
	pages  map[string]*template.Template
	static http.Handler
	// bundled: static/dist (make assets) was built into this binary.
	bundled bool
	// version is a hash of the assets: their URLs change when they do,
	// so browsers may cache them for long.
	version string
	// docs are the pages under /docs, rendered at start.
	docs   map[string]*docPage
	docTOC []*docPage
	// signup is the server's signup policy (nil: open to anyone, as for a
	// site without a server behind it).
	signup SignupGate
	// appPage is the page Dev8 shows on a workspace app's own origin
	// (apps.go); it has no layout of the dashboard's.
	appPage *template.Template
}

// New parses the embedded templates. openAPI is the API's OpenAPI document,
// which the docs render as the API reference; the server hands it over so
// that the pages need nothing of the API but its description.
func New(log *slog.Logger, openAPI []byte) (*Site, error) {
	if log == nil {
		log = slog.Default()
	}
	version, err := assetsVersion()
	if err != nil {
		return nil, err
	}
	s := &Site{log: log, pages: map[string]*template.Template{}, version: version}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{"asset": s.asset, "statusLabel": statusLabel}
	for _, name := range names {
		page := strings.TrimSuffix(path.Base(name), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		s.pages[page] = t
	}
	if _, err := fs.Stat(files, "static/dist/terminal.js"); err == nil {
		s.bundled = true
	} else {
		log.Warn("the web terminal's assets are not built into this binary: build with make (it runs make assets)")
	}
	sub, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	if s.docs, s.docTOC, err = loadDocs(openAPI); err != nil {
		return nil, err
	}
	if s.appPage, err = parseAppPage(); err != nil {
		return nil, fmt.Errorf("parse the app page: %w", err)
	}
	return s, nil
}

func assetsVersion() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(data))
		h.Write(data)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

func (s *Site) asset(name string) string { return "/static/" + name + "?v=" + s.version }

// Routes mounts the pages (httpmw.Pages).
func (s *Site) Routes(r chi.Router, guard httpmw.PageGuard) {
	// The terminal's bundle is a third of a megabyte; compressed, a quarter of that.
	r.With(middleware.Compress(5, "text/javascript", "text/css", "image/svg+xml")).Get("/static/*", s.serveStatic)
	r.Get("/", s.page("landing", "Cloud development environments"))
	r.Get(httpmw.SignInPath, s.page("signin", "Sign in"))
	r.Get("/signup", s.signupPage)
	// Forms with a password or a secret are method=post, so that a browser
	// without JavaScript never puts it in a URL (history, logs, Referer).
	// What such a browser posts is not read (every action is the API's,
	// through the page's script): it is sent back to the page, which says
	// that it needs JavaScript.
	for _, path := range []string{httpmw.SignInPath, "/signup", "/profile", "/settings"} {
		r.Post(path, backToPage)
	}
	r.Group(func(r chi.Router) {
		if guard.OptionalUser != nil {
			r.Use(guard.OptionalUser)
		}
		r.Get("/docs", s.serveDocs)
		r.Get("/docs/{slug}", s.serveDocs)
	})
	r.Group(func(r chi.Router) {
		r.Use(guard.RequireUser)
		r.Get("/dashboard", s.page("dashboard", "Environments"))
		r.Get("/new", s.page("new", "New environment"))
		r.Get("/settings", s.page("settings", "Settings"))
		r.Get("/profile", s.page("profile", "Profile"))
		r.With(s.adminOnly).Get("/admin", s.page("admin", "Users"))
		r.With(s.adminOnly).Get("/admin/invites", s.page("invites", "Invites"))
		r.With(s.adminOnly).Get("/admin/audit", s.page("audit", "Audit log"))
		r.With(guard.LoadEnvironment).Get("/environments/{id}", s.page("environment", "Environment"))
		r.With(guard.LoadEnvironment).Get("/environments/{id}/terminal", s.page("terminal", "Terminal"))
	})
}

func (s *Site) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") == s.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	s.static.ServeHTTP(w, r)
}

// pageData is what every template gets.
type pageData struct {
	Title         string
	Page          string
	User          *store.User
	EnvironmentID string
	Year          int
	// Script is the page's module (static/js/<page>.js).
	Script string
	// AssetsMissing: the bundled npm packages (static/dist) were not built
	// into this binary; pages that need them say so.
	AssetsMissing bool
	// Doc is the docs page shown, DocTOC every one of them.
	Doc    *docPage
	DocTOC []*docPage
	// Env is the environment the page is about (pages under
	// /environments/{id} and the IDE page), loaded by the page's guard.
	Env *store.Environment
	// IDE says why the IDE page stands where the IDE would.
	IDE *ideGate
	// Next is where the sign-in and sign-up pages go once signed in:
	// their ?next= if httpmw.SafeNext lets it through. The page's script
	// uses it as given.
	Next string
	// SignupOpen: a visitor may create an account without an invite, so
	// the pages offer to (see signup.go); SignupPolicy is the policy.
	SignupOpen   bool
	SignupPolicy string
	// Invite is the invite the sign-up page was opened with.
	Invite *invitePage
	// Problem is what the problem page says.
	Problem *problemPage
	// noReferrer: the page's URL holds a secret (an invite's token), so
	// its requests send no Referer at all.
	noReferrer bool
	// AppNotice is what the page in place of a workspace app says
	// (apps.go).
	AppNotice *httpmw.AppNotice
}

// IsAdmin: the header links the admin pages.
func (d pageData) IsAdmin() bool { return d.User != nil && d.User.Role == store.RoleAdmin }

// Initials for the avatar: of the name, else of the email.
func (d pageData) Initials() string {
	if d.User == nil {
		return ""
	}
	return initials(d.User.Name, d.User.Email)
}

func initials(name, email string) string {
	var out []rune
	for _, w := range strings.Fields(name) {
		for _, r := range w {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				out = append(out, unicode.ToUpper(r))
				break
			}
		}
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		for _, r := range email {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				out = append(out, unicode.ToUpper(r))
				break
			}
		}
	}
	if len(out) == 0 {
		return "?"
	}
	return string(out)
}

// statusLabel is a status as the pages show it: RUNNING → Running.
func statusLabel(status store.Status) string {
	s := string(status)
	if s == "" {
		return ""
	}
	return s[:1] + strings.ToLower(s[1:])
}

// adminOnly answers the 404 page to anyone but an admin: a member is not
// told the admin pages exist. (The API refuses them anyway.)
func (s *Site) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := auth.UserFrom(r.Context()); !ok || u.Role != store.RoleAdmin {
			s.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Site) page(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data := s.newPageData(r, name, title)
		if name == "terminal" && !s.bundled {
			data.AssetsMissing, data.Script = true, "js/api.js"
		}
		s.render(w, r, http.StatusOK, name, data)
	}
}

// backToPage answers a page's form posted by a browser without
// JavaScript: 303 to the page itself (its own path and query, so never
// elsewhere), whose <noscript> says why nothing happened. The body is not
// read.
func backToPage(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, r.URL.RequestURI(), http.StatusSeeOther)
}

func (s *Site) newPageData(r *http.Request, name, title string) pageData {
	data := pageData{Title: title, Page: name, EnvironmentID: chi.URLParam(r, "id"), Year: time.Now().Year(), Script: "js/" + name + ".js"}
	if name == "signin" || name == "signup" {
		data.Next = httpmw.SafeNext(r.URL.Query().Get("next"), "/dashboard")
	}
	if u, ok := auth.UserFrom(r.Context()); ok {
		data.User = &u
	}
	s.addSignup(r, &data)
	if env, ok := httpmw.LoadedEnvironment(r); ok {
		data.Env = &env
		// The tab says which environment it is.
		data.Title = env.Name + " · " + title
		if name == "environment" {
			data.Title = env.Name
		}
	}
	return data
}

// NotFound renders the 404 page (httpmw.Pages). A signed-in visitor (whose
// user the route's guard put in the context) keeps their navigation.
func (s *Site) NotFound(w http.ResponseWriter, r *http.Request) {
	data := pageData{Title: "Not found", Page: "notfound", Year: time.Now().Year(), Script: "js/notfound.js"}
	if u, ok := auth.UserFrom(r.Context()); ok {
		data.User = &u
	}
	s.addSignup(r, &data)
	s.render(w, r, http.StatusNotFound, "notfound", data)
}

func (s *Site) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if name == "terminal" {
		h.Set("Content-Security-Policy", terminalPolicy)
	} else {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
	}
	if data.noReferrer {
		h.Set("Referrer-Policy", "no-referrer")
	} else {
		h.Set("Referrer-Policy", "same-origin")
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

package web

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"dev8.dev/dev8/internal/httpmw"
)

// appPagePolicy is the Content-Security-Policy of Dev8's own pages on a
// workspace app's origin: no script at all, the stylesheet and icon from
// that origin.
const appPagePolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// appAssets are the files an app's origin serves for AppPage's pages.
var appAssets = map[string]string{"app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}

// AppNotice renders the page in place of opening a workspace app
// (httpmw.Pages): an admin about to open someone else's, or why it cannot
// be opened here. Its script (static/js/open.js) opens it on the click.
func (s *Site) AppNotice(w http.ResponseWriter, r *http.Request, status int, n httpmw.AppNotice) {
	data := s.newPageData(r, "open", n.App.String())
	data.AppNotice = &n
	s.render(w, r, status, "open", data)
}

// appPageData is what apphost/page.html gets.
type appPageData struct {
	httpmw.AppPage
	// Refresh is the page's meta refresh, in seconds ("" for none).
	Refresh             string
	Stylesheet, Favicon string
}

// AppPage renders a page on a workspace app's origin (httpmw.Pages). It
// stands alone: no dashboard layout, session or script; its links to the
// dashboard are absolute (p.Dashboard).
func (s *Site) AppPage(w http.ResponseWriter, r *http.Request, status int, p httpmw.AppPage) {
	data := appPageData{AppPage: p,
		Stylesheet: httpmw.AppAssetPath("app.css") + "?v=" + s.version, Favicon: httpmw.AppAssetPath("favicon.svg") + "?v=" + s.version}
	if p.Refresh > 0 {
		data.Refresh = strconv.Itoa(max(1, int(p.Refresh/time.Second)))
	}
	var buf bytes.Buffer
	if err := s.appPage.Execute(&buf, data); err != nil {
		s.log.ErrorContext(r.Context(), "render app page", "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", appPagePolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// AppAsset serves the files AppPage's pages load (httpmw.Pages), at
// httpmw.AppAssetPath(name) on an app's origin.
func (s *Site) AppAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, httpmw.AppAssetPath(""))
	ctype, ok := appAssets[name]
	if !ok {
		s.AppPage(w, r, http.StatusNotFound, httpmw.AppPage{Title: "Not found", Message: "There is nothing here."})
		return
	}
	data, err := fs.ReadFile(files, "static/"+name)
	if err != nil {
		http.Error(w, "missing asset", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	if r.URL.Query().Get("v") == s.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

func parseAppPage() (*template.Template, error) {
	return template.ParseFS(files, "templates/apphost/page.html")
}

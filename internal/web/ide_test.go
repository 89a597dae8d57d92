package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
)

// TestIDEUnavailable renders the page a browser gets in place of the IDE
// for each state, with the refusal's status: what it says, which actions
// it offers, and whether it opens the IDE by itself.
func TestIDEUnavailable(t *testing.T) {
	t.Parallel()
	site, err := New(nil, openAPIDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	notRunning := &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Environment is not running"}
	for _, c := range []struct {
		name    string
		env     store.Environment
		problem error
		status  int
		want    []string // in the page
		offered []string // buttons shown (not hidden)
	}{
		{"stopped", store.Environment{Status: store.StatusStopped}, notRunning, http.StatusConflict,
			[]string{"web is stopped", "Start it to open VS Code"}, []string{"gate-start", "gate-delete"}},
		{"failed", store.Environment{Status: store.StatusError, StatusReason: "image dev8/nodejs not found: run make images"}, notRunning, http.StatusConflict,
			[]string{"web failed", "image dev8/nodejs not found: run make images"}, []string{"gate-start", "gate-delete"}},
		{"creating", store.Environment{Status: store.StatusCreating}, notRunning, http.StatusConflict,
			[]string{"Creating web…", "VS Code opens here as soon as the workspace is ready"}, nil},
		{"starting", store.Environment{Status: store.StatusStarting}, notRunning, http.StatusConflict,
			[]string{"Starting web…"}, nil},
		{"no IDE", store.Environment{Status: store.StatusRunning}, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "This workspace has no IDE"}, http.StatusNotFound,
			[]string{"web has no VS Code"}, []string{"gate-terminal"}},
		{"not answering", store.Environment{Status: store.StatusRunning, VSCodeURL: "http://x/w/env_1/ide/"},
			&httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable, Message: "The workspace is not reachable", Details: "its supervisor has not connected"}, http.StatusServiceUnavailable,
			[]string{"VS Code is not answering yet", "The workspace is not reachable: its supervisor has not connected"}, []string{"gate-retry"}},
		{"an unexpected error", store.Environment{Status: store.StatusRunning, VSCodeURL: "http://x/w/env_1/ide/"}, errors.New("boom"), http.StatusServiceUnavailable,
			[]string{"VS Code is not answering yet"}, []string{"gate-retry"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.env.ID, c.env.Name = "env_1", "web"
			rctx := chi.NewRouteContext()
			rctx.URLParams.Add("id", c.env.ID)
			ctx := httpmw.WithEnvironment(context.WithValue(context.Background(), chi.RouteCtxKey, rctx), c.env)
			r := httptest.NewRequestWithContext(ctx, "GET", "/w/env_1/ide/", nil)
			w := httptest.NewRecorder()
			site.IDEUnavailable(w, r, c.problem)
			page := w.Body.String()
			if w.Code != c.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Errorf("%d %s, want a %d page", w.Code, w.Header().Get("Content-Type"), c.status)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q", csp)
			}
			for _, s := range c.want {
				if !strings.Contains(page, s) {
					t.Errorf("the page does not say %q:\n%s", s, page)
				}
			}
			for _, id := range []string{"gate-start", "gate-delete", "gate-terminal", "gate-retry"} {
				offered := strings.Contains(page, `id="`+id+`"`) && !strings.Contains(page, `id="`+id+`" hidden`) &&
					!strings.Contains(page, `id="`+id+`" href="/environments/env_1/terminal" hidden`)
				want := false
				for _, o := range c.offered {
					want = want || o == id
				}
				if offered != want {
					t.Errorf("%s offered = %v, want %v", id, offered, want)
				}
			}
			if !strings.Contains(page, `<title>web · VS Code · Dev8</title>`) {
				t.Errorf("no title naming the workspace")
			}
		})
	}
}

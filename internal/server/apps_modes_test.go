package server_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// How the server serves workspace apps in each configuration: what it says
// at start, the IDE on its own origin (the default), and the path-based
// IDE of --unsafe-path-based-apps.

// TestAppsLoggedAtStart: the server says where workspace apps are served,
// warns when they cannot have origins of their own (an access URL on an
// address that is not loopback, with no wildcard set), and warns loudly
// when the IDE is served on the dashboard's origin.
func TestAppsLoggedAtStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config func(*server.Config)
		want   []string
	}{
		{"default", nil, []string{`level=INFO msg="workspace apps are served on origins of their own" url=http://*.localhost:`}},
		{"wildcard", func(c *server.Config) { c.WildcardAccessURL = "https://*.apps.example.com" },
			[]string{`url=https://*.apps.example.com`}},
		{"LAN address", func(c *server.Config) { c.AccessURL = "http://192.0.2.10:3000" },
			[]string{`level=WARN msg="workspace apps cannot be opened on origins of their own"`, "set --wildcard-access-url"}},
		{"path-based", func(c *server.Config) { c.UnsafePathBasedApps = true },
			[]string{`level=WARN msg="--unsafe-path-based-apps: every workspace's IDE is served on the dashboard's own origin`, "a member's IDE can act as whoever opens it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			ts := startServer(t, "", func(c *server.Config) {
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
				if tc.config != nil {
					tc.config(c)
				}
			})
			// Serving means the start's lines are written.
			if resp := ts.fetch(ts.url + "/health"); resp.StatusCode != http.StatusOK {
				t.Fatalf("/health: %d", resp.StatusCode)
			}
			for _, want := range tc.want {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log has no %q:\n%s", want, logs.String())
				}
			}
		})
	}
	// A wildcard that is none is refused at start.
	_, err := server.New(t.Context(), server.Config{DataDir: t.TempDir(), WildcardAccessURL: "apps.example.com"})
	if err == nil || !strings.Contains(err.Error(), "must start with *.") {
		t.Errorf("a bad wildcard: %v", err)
	}
}

// TestPathBasedApps: with --unsafe-path-based-apps, code-server is served
// under /w/{id}/ide/ on the dashboard's origin as before (the IDE's
// activity reports there too), and an admin's browser is refused other
// people's IDEs there, where their pages would run with the admin's
// session; by default those addresses only lead to the IDE's own origin.
func TestPathBasedApps(t *testing.T) {
	t.Parallel()
	codeServer := codeServerOrSkip(t)
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = codeServer; c.UnsafePathBasedApps = true })
	adminToken, _ := ts.user("admin@example.com")
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	healthz := ts.url + "/w/" + env.ID + "/ide/healthz"
	wait.Succeeds(ts.ctx, t, "code-server to answer under /w/{id}/ide/", func() error {
		if resp := ts.fetch(healthz, "Authorization", "Bearer "+token); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, resp.body)
		}
		return nil
	})
	// The dashboard's cookie works there, as before.
	resp := ts.fetch(env.VSCodeURL, "Cookie", "dev8_session="+token, "Accept", browserAccept)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(resp.body), "/w/"+env.ID+"/activity.js") {
		t.Errorf("the workbench under /w/: %d, want it with the activity script", resp.StatusCode)
	}
	report := func(cookie string) int {
		req, _ := http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/w/"+env.ID+"/activity", nil)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("X-Dev8-Activity", "1")
		req.Header.Set("Origin", ts.url)
		return ts.send(req).StatusCode
	}
	if code := report("dev8_session=" + token); code != http.StatusNoContent {
		t.Errorf("the path-based IDE's activity report: %d, want 204", code)
	}
	// An admin's browser: refused, with a page that says why; the admin's
	// bearer token (a program, on purpose) is not.
	resp = ts.fetch(env.VSCodeURL, "Cookie", "dev8_session="+adminToken, "Accept", browserAccept)
	isHTMLPage(t, "an admin's browser on a member's path-based IDE", resp, http.StatusForbidden, "--unsafe-path-based-apps")
	isJSONError(t, "an admin's cookie on a member's path-based IDE", ts.fetch(healthz, "Cookie", "dev8_session="+adminToken), http.StatusForbidden)
	if code := report("dev8_session=" + adminToken); code != http.StatusForbidden {
		t.Errorf("an admin's cookie reporting a member's IDE activity: %d, want 403", code)
	}
	if resp := ts.fetch(healthz, "Authorization", "Bearer "+adminToken); resp.StatusCode != http.StatusOK {
		t.Errorf("an admin's bearer token: %d", resp.StatusCode)
	}
}

// TestIDEOnItsOwnOrigin: by default /w/{id}/ide/ only leads to the IDE's
// origin (any method but GET and HEAD is not served there, nor are the
// path-based IDE's activity reports), and the dashboard's page for a
// starting workspace asks GET …/ide/health before it goes there.
func TestIDEOnItsOwnOrigin(t *testing.T) {
	t.Parallel()
	codeServer := codeServerOrSkip(t)
	ts := startServer(t, "", func(c *server.Config) { c.CodeServer = codeServer })
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", AutoStopMinutes: minutes(60)})
	env = ts.waitStatus(token, env.ID, sdk.StatusRunning)
	wait.Succeeds(ts.ctx, t, "code-server to answer its health check", func() error {
		var out map[string]string
		if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/ide/health", token, nil, &out); code != http.StatusOK || out["status"] != "ready" {
			return fmt.Errorf("%d %v", code, out)
		}
		return nil
	})
	resp := ts.fetch(env.VSCodeURL, "Authorization", "Bearer "+token)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), ts.appOrigin(env.ID, "ide")+"/__dev8/auth?ticket=") {
		t.Fatalf("vs_code_url: %d %q, want 303 to the IDE's origin", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/w/"+env.ID+"/ide/x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if got := ts.send(req); got.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST under /w/{id}/ide/: %d, want 405", got.StatusCode)
	}
	req, _ = http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/w/"+env.ID+"/activity", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if got := ts.send(req); got.StatusCode != http.StatusNotFound {
		t.Errorf("the path-based activity route: %d, want 404", got.StatusCode)
	}
	// On the IDE's origin the workbench loads its activity script there.
	cookie := ts.appCookie(token, env.ID, "ide")
	vs, _ := url.Parse(env.VSCodeURL)
	resp = ts.fetch(ts.appOrigin(env.ID, "ide")+"/?"+vs.RawQuery, "Cookie", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(resp.body), `<script src="/__dev8/activity.js"`) {
		t.Errorf("the workbench on its origin: %d, want the activity script from /__dev8/activity.js", resp.StatusCode)
	}
	if js := ts.fetch(ts.appOrigin(env.ID, "ide")+"/__dev8/activity.js", "Cookie", cookie); js.StatusCode != http.StatusOK || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("the activity script: %d %s", js.StatusCode, js.Header.Get("Content-Type"))
	}
	// The health check answers "not running" for a stopped workspace.
	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	if code := ts.call("GET", "/api/v1/environments/"+env.ID+"/ide/health", token, nil, nil); code != http.StatusConflict {
		t.Errorf("health of a stopped IDE: %d, want 409", code)
	}
}

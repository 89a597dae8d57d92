package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

func TestAuthorization(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, eng.url(t), nil)
			adminToken, adminID := ts.user("admin@example.com") // the first user is the admin
			ownerToken, ownerID := ts.user("owner@example.com")
			otherToken, _ := ts.user("other@example.com")

			admin, owner, other := ts.client(adminToken), ts.client(ownerToken), ts.client(otherToken)
			if me, err := admin.Me(ts.ctx); err != nil || me.ID != adminID || me.Role != "admin" {
				t.Fatalf("first user = %+v, %v; want admin", me, err)
			}
			if me, err := owner.Me(ts.ctx); err != nil || me.Role != "member" {
				t.Fatalf("second user = %+v, %v; want a member", me, err)
			}

			env := ts.create(ownerToken, sdk.CreateEnvironmentRequest{Name: "mine"})
			ts.waitStatus(ownerToken, env.ID, sdk.StatusRunning)
			base := "/api/v1/environments/" + env.ID

			// A matrix of routes and callers: checked on the wire.
			routes := []struct{ method, path string }{
				{"GET", base}, {"DELETE", base}, {"POST", base + "/start"}, {"POST", base + "/stop"}, {"POST", base + "/activity"},
			}
			for _, r := range routes {
				var e sdk.ErrorResponse
				if code := ts.call(r.method, r.path, otherToken, nil, &e); code != http.StatusNotFound || e.Code != "NOT_FOUND" {
					t.Errorf("other user %s %s = %d %+v, want 404", r.method, r.path, code, e)
				}
				if code := ts.call(r.method, r.path, "", nil, &e); code != http.StatusUnauthorized || e.Code != "UNAUTHORIZED" {
					t.Errorf("anonymous %s %s = %d %+v, want 401", r.method, r.path, code, e)
				}
				if code := ts.call(r.method, r.path, "dev8_not-a-real-token", nil, &e); code != http.StatusUnauthorized {
					t.Errorf("bad token %s %s = %d, want 401", r.method, r.path, code)
				}
			}
			for _, path := range []string{"/api/v1/environments", "/api/v1/templates", "/api/v1/instance-types", "/api/v1/auth/me"} {
				if code := ts.call("GET", path, "", nil, nil); code != http.StatusUnauthorized {
					t.Errorf("anonymous GET %s = %d, want 401", path, code)
				}
			}
			if got := ts.waitStatus(ownerToken, env.ID, sdk.StatusRunning); got.Status != "RUNNING" {
				t.Fatal("another user's requests changed the environment")
			}

			if list, err := other.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{}); err != nil || list.Total != 0 {
				t.Fatalf("other user lists %+v, %v; want none", list, err)
			}
			if _, err := other.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{All: true}); !isAPIError(err, http.StatusForbidden, "") {
				t.Fatalf("member all=true = %v, want 403", err)
			}
			if list, err := admin.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{All: true}); err != nil || list.Total != 1 {
				t.Fatalf("admin all=true lists %+v, %v; want 1", list, err)
			}
			if _, err := admin.GetEnvironment(ts.ctx, env.ID); err != nil {
				t.Fatalf("admin get = %v", err)
			}

			// user_id in a create body.
			if _, err := other.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "x", UserID: ownerID}); !isAPIError(err, http.StatusForbidden, sdk.CodeForbidden) {
				t.Fatalf("member creating for another = %v", err)
			}
			if _, err := admin.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "x", UserID: "usr_nobody"}); !isAPIError(err, http.StatusBadRequest, "") {
				t.Fatalf("admin creating for unknown user = %v", err)
			}
			onBehalf := ts.create(adminToken, sdk.CreateEnvironmentRequest{Name: "for-owner", UserID: ownerID})
			if onBehalf.UserID != ownerID {
				t.Fatalf("admin create on behalf: user_id = %s", onBehalf.UserID)
			}
			if _, err := owner.GetEnvironment(ts.ctx, onBehalf.ID); err != nil {
				t.Fatalf("owner cannot see what the admin made for them: %v", err)
			}
		})
	}
}

// TestBadInput is about the wire (status codes and error bodies of bad
// requests, malformed JSON, content types): it stays raw HTTP.
func TestBadInput(t *testing.T) {
	t.Parallel()
	// Open signup: a signup with a registered email is a conflict there;
	// under invite (the default) an uninvited visitor learns nothing of
	// which emails are registered (TestSignupPolicy).
	ts := startServer(t, "", func(c *server.Config) { c.Signup = signup.Open })
	token, _ := ts.user("ada@example.com")
	existing := ts.create(token, sdk.CreateEnvironmentRequest{Name: "taken"})
	ts.waitStatus(token, existing.ID, sdk.StatusRunning)

	big := `{"name":"big","environment_variables":{"X":"` + strings.Repeat("a", 1<<20) + `"}}`
	tests := []struct {
		name         string
		method, path string
		body         any
		status       int
		code         string
	}{
		{"malformed JSON", "POST", "/api/v1/environments", `{"name":`, 400, "INVALID_JSON"},
		{"not an object", "POST", "/api/v1/environments", `[1,2]`, 400, "INVALID_JSON"},
		{"trailing data", "POST", "/api/v1/environments", `{"name":"a"} {}`, 400, "INVALID_JSON"},
		{"empty body", "POST", "/api/v1/environments", ``, 400, "INVALID_JSON"},
		{"unknown field", "POST", "/api/v1/environments", `{"name":"a","colour":"red"}`, 400, "VALIDATION_ERROR"},
		{"wrong type", "POST", "/api/v1/environments", `{"name":"a","cpu_cores":"two"}`, 400, "VALIDATION_ERROR"},
		{"fractional size", "POST", "/api/v1/environments", `{"name":"a","memory_gb":1.5}`, 400, "VALIDATION_ERROR"},
		{"zero size", "POST", "/api/v1/environments", `{"name":"a","cpu_cores":0}`, 400, "VALIDATION_ERROR"},
		{"too many cpus", "POST", "/api/v1/environments", `{"name":"a","cpu_cores":64}`, 400, "VALIDATION_ERROR"},
		{"too much storage", "POST", "/api/v1/environments", `{"name":"a","storage_gb":100000}`, 400, "VALIDATION_ERROR"},
		{"unknown template", "POST", "/api/v1/environments", `{"name":"a","template_name":"cobol"}`, 400, "VALIDATION_ERROR"},
		{"unknown instance type", "POST", "/api/v1/environments", `{"name":"a","instance_type":"huge"}`, 400, "VALIDATION_ERROR"},
		{"name not DNS-safe", "POST", "/api/v1/environments", `{"name":"My Env"}`, 400, "VALIDATION_ERROR"},
		{"name too long", "POST", "/api/v1/environments", `{"name":"` + strings.Repeat("a", 64) + `"}`, 400, "VALIDATION_ERROR"},
		{"missing name", "POST", "/api/v1/environments", `{}`, 400, "VALIDATION_ERROR"},
		{"other runtime", "POST", "/api/v1/environments", `{"name":"a","cloud_provider":"AZURE"}`, 400, "VALIDATION_ERROR"},
		{"duplicate name", "POST", "/api/v1/environments", `{"name":"taken"}`, 409, "CONFLICT"},
		{"body over 1 MiB", "POST", "/api/v1/environments", big, 413, "PAYLOAD_TOO_LARGE"},
		{"unknown id", "GET", "/api/v1/environments/env_doesnotexist", nil, 404, "NOT_FOUND"},
		{"start unknown id", "POST", "/api/v1/environments/env_doesnotexist/start", nil, 404, "NOT_FOUND"},
		{"bad status filter", "GET", "/api/v1/environments?status=SLEEPING", nil, 400, "VALIDATION_ERROR"},
		{"bad limit", "GET", "/api/v1/environments?limit=0", nil, 400, "VALIDATION_ERROR"},
		{"limit too big", "GET", "/api/v1/environments?limit=1000", nil, 400, "VALIDATION_ERROR"},
		{"bad offset", "GET", "/api/v1/environments?offset=-1", nil, 400, "VALIDATION_ERROR"},
		{"activity with junk body", "POST", "/api/v1/environments/" + existing.ID + "/activity", `{"x":1}`, 400, "VALIDATION_ERROR"},
		{"unknown route", "GET", "/api/v1/nothing", nil, 404, "NOT_FOUND"},
		{"wrong method", "PUT", "/api/v1/environments", nil, 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e sdk.ErrorResponse
			code := ts.call(tt.method, tt.path, token, tt.body, &e)
			if code != tt.status || e.Code != tt.code || e.Error == "" {
				t.Fatalf("%s %s = %d %+v, want %d %s", tt.method, tt.path, code, e, tt.status, tt.code)
			}
		})
	}

	t.Run("wrong content type", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/api/v1/environments", strings.NewReader(`{"name":"a"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})

	t.Run("signup and login", func(t *testing.T) {
		cases := []struct {
			path   string
			body   string
			status int
			code   string
		}{
			{"/api/v1/auth/signup", `{"email":"not-an-email","password":"longenough"}`, 400, "VALIDATION_ERROR"},
			{"/api/v1/auth/signup", `{"email":"Ada <ada@x.io>","password":"longenough"}`, 400, "VALIDATION_ERROR"},
			{"/api/v1/auth/signup", `{"email":"bob@example.com","password":"short"}`, 400, "VALIDATION_ERROR"},
			{"/api/v1/auth/signup", `{"email":"ADA@example.com","password":"longenough"}`, 409, "CONFLICT"},
			{"/api/v1/auth/signup", `{"email":"bob@example.com","password":"longenough","admin":true}`, 400, "VALIDATION_ERROR"},
			{"/api/v1/auth/login", `{"email":"ada@example.com","password":"wrong password"}`, 401, "UNAUTHORIZED"},
			{"/api/v1/auth/login", `{"email":"nobody@example.com","password":"wrong password"}`, 401, "UNAUTHORIZED"},
			{"/api/v1/auth/login", `{"email":"ada@example.com"}`, 400, "VALIDATION_ERROR"},
		}
		for _, c := range cases {
			var e sdk.ErrorResponse
			if code := ts.call("POST", c.path, "", c.body, &e); code != c.status || e.Code != c.code {
				t.Errorf("POST %s %s = %d %+v, want %d %s", c.path, c.body, code, e, c.status, c.code)
			}
		}
	})

	// Nothing half-created: only the one good environment exists, and no
	// user was created by the rejected signups.
	envs, total, err := ts.srv.Store.ListEnvironments(ts.ctx, store.EnvironmentFilter{})
	if err != nil || total != 1 || envs[0].ID != existing.ID {
		t.Fatalf("after bad input: %d environments (%v)", total, err)
	}
	if _, err := ts.srv.Store.GetUserByEmail(ts.ctx, "bob@example.com"); err == nil {
		t.Fatal("a rejected signup created a user")
	}
}

func TestIdleReaper(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	idle := ts.create(token, sdk.CreateEnvironmentRequest{Name: "idle", AutoStopMinutes: minutes(1)})
	busy := ts.create(token, sdk.CreateEnvironmentRequest{Name: "busy", AutoStopMinutes: minutes(1)})
	never := ts.create(token, sdk.CreateEnvironmentRequest{Name: "never", AutoStopMinutes: minutes(0)})
	for _, e := range []sdk.Environment{idle, busy, never} {
		ts.waitStatus(token, e.ID, sdk.StatusRunning)
	}

	// Hold the reaper's view of time still while both get their last word in:
	// busy reports activity 50 s into the minute, idle says nothing.
	ts.clock.Advance(50 * time.Second)
	if err := ts.client(token).ReportActivity(ts.ctx, busy.ID); err != nil {
		t.Fatalf("activity = %v", err)
	}
	ts.clock.Advance(20 * time.Second) // idle: 70 s quiet; busy: 20 s

	stopped := ts.waitStatus(token, idle.ID, sdk.StatusStopped)
	if !strings.Contains(stopped.StatusReason, "without activity") {
		t.Fatalf("idle stop reason = %q", stopped.StatusReason)
	}
	// The reaper has run (it stopped idle); let it sweep a few more times and
	// check the others were spared.
	for range 3 {
		if _, err := ts.srv.Manager.Reap(ts.ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []sdk.Environment{busy, never} {
		env, err := ts.srv.Store.GetEnvironment(ts.ctx, e.ID)
		if err != nil || env.Status != store.StatusRunning {
			t.Fatalf("%s: %s (%v), want RUNNING", e.Name, env.Status, err)
		}
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	ada := ts.client(token)
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if env, err := ada.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "same-name"}); err == nil {
				ids[i] = env.ID
			}
		}()
	}
	wg.Wait()
	created := 0
	for _, id := range ids {
		if id != "" {
			created++
			ts.waitStatus(token, id, sdk.StatusRunning)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent creates with one name succeeded, want exactly 1", created)
	}
}

package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// createdToken is the answer to POST /api/v1/tokens: the secret, shown
// this once, and the token's metadata.
type createdToken struct {
	Token    string       `json:"token"`
	APIToken sdk.APIToken `json:"api_token"`
}

// raw sends a request with an optional X-Request-Id and returns the status
// and the body as it came.
func (ts *testServer) raw(method, path, token, requestID string, body any) (int, []byte) {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ts.ctx, method, ts.url+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// createToken makes an API token through the sdk (expiresInDays <= 0: the
// server's default lifetime).
func (ts *testServer) createToken(token, name string, expiresInDays int) createdToken {
	ts.t.Helper()
	secret, tok, err := ts.client(token).CreateToken(ts.ctx, name, expiresInDays)
	if err != nil {
		ts.t.Fatalf("create token %s (%d days): %v", name, expiresInDays, err)
	}
	return createdToken{Token: secret, APIToken: *tok}
}

// listTokens lists the caller's tokens on the wire: tests look at the raw
// body for secrets that must not be in it.
func (ts *testServer) listTokens(token string) ([]sdk.APIToken, string) {
	ts.t.Helper()
	code, data := ts.raw("GET", "/api/v1/tokens", token, "", nil)
	if code != http.StatusOK {
		ts.t.Fatalf("list tokens: %d %s", code, data)
	}
	var out struct {
		APITokens []sdk.APIToken `json:"api_tokens"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		ts.t.Fatal(err)
	}
	return out.APITokens, string(data)
}

func near(got time.Time, want time.Time) bool {
	d := got.Sub(want)
	return d > -time.Minute && d < time.Minute
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, eng.url(t), nil)
			_, _ = ts.user("admin@example.com")
			adaLogin, _ := ts.user("ada@example.com")
			bobLogin, _ := ts.user("bob@example.com")

			ci := ts.createToken(adaLogin, "ci", 0)
			if !strings.HasPrefix(ci.Token, "dev8_") || !strings.HasPrefix(ci.APIToken.ID, "tok_") || ci.APIToken.Name != "ci" {
				t.Fatalf("created %+v", ci)
			}
			if ci.APIToken.ExpiresAt == nil || !near(*ci.APIToken.ExpiresAt, ts.clock.Now().Add(30*24*time.Hour)) {
				t.Errorf("default expiry %v, want 30 days from now", ci.APIToken.ExpiresAt)
			}
			if ci.APIToken.LastUsedAt != nil {
				t.Errorf("a new token has last_used_at %v", ci.APIToken.LastUsedAt)
			}
			if me, err := ts.client(ci.Token).Me(ts.ctx); err != nil || me.Email != "ada@example.com" {
				t.Fatalf("me with the new token: %+v, %v", me, err)
			}

			// Listed newest first (a login is a session, not a token),
			// metadata only: the secret is never shown again.
			year := ts.createToken(adaLogin, "yearly", 365)
			if !near(*year.APIToken.ExpiresAt, ts.clock.Now().Add(365*24*time.Hour)) {
				t.Errorf("365-day token expires %v", year.APIToken.ExpiresAt)
			}
			toks, raw := ts.listTokens(adaLogin)
			var names []string
			for _, tok := range toks {
				names = append(names, tok.Name)
			}
			if strings.Join(names, ",") != "yearly,ci" {
				t.Fatalf("ada's tokens = %v, want yearly,ci", names)
			}
			if toks[1].LastUsedAt == nil {
				t.Error("ci was used but has no last_used_at")
			}
			for _, secret := range []string{ci.Token, year.Token, adaLogin} {
				if strings.Contains(raw, secret) {
					t.Fatal("a token list shows a secret")
				}
			}
			if strings.Contains(raw, `"hash"`) || strings.Contains(raw, `"token"`) {
				t.Fatalf("a token list shows more than metadata: %s", raw)
			}
			if bobs, _ := ts.listTokens(bobLogin); len(bobs) != 0 {
				t.Fatalf("bob sees %+v", bobs)
			}

			// Validation and uniqueness: bad input, checked on the wire.
			for _, tc := range []struct {
				body map[string]any
				code int
			}{
				{map[string]any{"name": "ci"}, http.StatusConflict},
				{map[string]any{"name": " ci "}, http.StatusConflict},
				{map[string]any{"name": "login"}, http.StatusBadRequest},
				{map[string]any{"name": ""}, http.StatusBadRequest},
				{map[string]any{"name": strings.Repeat("x", 65)}, http.StatusBadRequest},
				{map[string]any{"name": "tab\there"}, http.StatusBadRequest},
				{map[string]any{"name": "long", "expires_in_days": 366}, http.StatusBadRequest},
				{map[string]any{"name": "zero", "expires_in_days": 0}, http.StatusBadRequest},
				{map[string]any{"name": "neg", "expires_in_days": -1}, http.StatusBadRequest},
				{map[string]any{"name": "x", "secret": "y"}, http.StatusBadRequest},
			} {
				var e sdk.ErrorResponse
				if code := ts.call("POST", "/api/v1/tokens", adaLogin, tc.body, &e); code != tc.code {
					t.Errorf("create %v = %d %+v, want %d", tc.body, code, e, tc.code)
				}
			}
			// Names are unique per user only.
			ts.createToken(bobLogin, "ci", 1)
			ts.createToken(bobLogin, "max", 365)

			// Another user's token is answered like a missing one.
			ada, bob, ciClient := ts.client(adaLogin), ts.client(bobLogin), ts.client(ci.Token)
			if err := bob.RevokeToken(ts.ctx, ci.APIToken.ID); !isAPIError(err, http.StatusNotFound, sdk.CodeNotFound) {
				t.Fatalf("bob revoking ada's token = %v, want 404", err)
			}
			if err := ada.RevokeToken(ts.ctx, "tok_missing"); !isAPIError(err, http.StatusNotFound, "") {
				t.Fatalf("revoking a missing token = %v, want 404", err)
			}
			if _, err := ciClient.Me(ts.ctx); err != nil {
				t.Fatalf("ci after bob's attempt = %v", err)
			}

			// Revoking with another token: it stops working at once. The
			// answer's body is checked on the wire.
			var revoked struct{ Message, ID string }
			if code := ts.call("DELETE", "/api/v1/tokens/"+ci.APIToken.ID, adaLogin, nil, &revoked); code != http.StatusOK || revoked.ID != ci.APIToken.ID || revoked.Message == "" {
				t.Fatalf("revoke = %d %+v", code, revoked)
			}
			if _, err := ciClient.Me(ts.ctx); !isAPIError(err, http.StatusUnauthorized, sdk.CodeUnauthorized) {
				t.Fatalf("revoked token = %v, want 401", err)
			}
			// Revoking the token in use: this request works, the next does not.
			yearClient := ts.client(year.Token)
			if err := yearClient.RevokeToken(ts.ctx, year.APIToken.ID); err != nil {
				t.Fatalf("self-revoke = %v", err)
			}
			if _, err := yearClient.Tokens(ts.ctx); !isAPIError(err, http.StatusUnauthorized, "") {
				t.Fatalf("self-revoked token = %v, want 401", err)
			}
			// The login's session ends with logout.
			if toks, _ = ts.listTokens(adaLogin); len(toks) != 0 {
				t.Fatalf("ada's tokens after revokes = %+v", toks)
			}
			if err := ada.Logout(ts.ctx); err != nil {
				t.Fatalf("logout = %v", err)
			}
			if _, err := ada.Tokens(ts.ctx); !isAPIError(err, http.StatusUnauthorized, "") {
				t.Fatalf("logged-out session = %v, want 401", err)
			}

			// Anonymous: 401 everywhere (a matrix of routes, on the wire).
			for _, r := range []struct{ method, path string }{{"GET", "/api/v1/tokens"}, {"POST", "/api/v1/tokens"}, {"DELETE", "/api/v1/tokens/" + ci.APIToken.ID}} {
				if code := ts.call(r.method, r.path, "", nil, nil); code != http.StatusUnauthorized {
					t.Errorf("anonymous %s %s = %d, want 401", r.method, r.path, code)
				}
			}
		})
	}
}

func TestAPITokenLifetimes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.TokenDefaultLifetime = 2 * 24 * time.Hour
		c.TokenMaxLifetime = 10 * 24 * time.Hour
	})
	login, _ := ts.user("ada@example.com")
	def := ts.createToken(login, "default", 0)
	if !near(*def.APIToken.ExpiresAt, ts.clock.Now().Add(2*24*time.Hour)) {
		t.Errorf("default lifetime: expires %v, want 2 days from now", def.APIToken.ExpiresAt)
	}
	week := ts.createToken(login, "week", 7)
	ts.createToken(login, "max", 10)
	_, _, err := ts.client(login).CreateToken(ts.ctx, "over", 11)
	if !isAPIError(err, http.StatusBadRequest, "") || !strings.Contains(err.(*sdk.Error).Details, "between 1 and 10") {
		t.Fatalf("over the configured maximum = %v, want 400", err)
	}
	// Expired tokens stop working.
	ts.clock.Advance(3 * 24 * time.Hour)
	_, err = ts.client(def.Token).Me(ts.ctx)
	if !isAPIError(err, http.StatusUnauthorized, "") || err.(*sdk.Error).Message != "Token expired" {
		t.Fatalf("expired token = %v", err)
	}
	if _, err := ts.client(week.Token).Me(ts.ctx); err != nil {
		t.Fatalf("unexpired token = %v", err)
	}
}

func TestTokenLifetimeConfigRejected(t *testing.T) {
	t.Parallel()
	for _, c := range []server.Config{
		{TokenDefaultLifetime: 400 * 24 * time.Hour},
		{TokenDefaultLifetime: 5 * 24 * time.Hour, TokenMaxLifetime: 2 * 24 * time.Hour},
		{TokenMaxLifetime: time.Hour},
		{TokenDefaultLifetime: -time.Hour},
	} {
		c.DataDir = t.TempDir()
		if srv, err := server.New(t.Context(), c); err == nil {
			srv.Close()
			t.Errorf("server.New accepted token lifetimes default %s, max %s", c.TokenDefaultLifetime, c.TokenMaxLifetime)
		}
	}
}

// audit reads the audit log on the wire: tests look at the raw body for
// secrets that must not be in it.
func (ts *testServer) audit(token string, q url.Values) (sdk.AuditEventList, string) {
	ts.t.Helper()
	code, data := ts.raw("GET", "/api/v1/audit?"+q.Encode(), token, "", nil)
	if code != http.StatusOK {
		ts.t.Fatalf("GET /audit?%s = %d %s", q.Encode(), code, data)
	}
	var out sdk.AuditEventList
	if err := json.Unmarshal(data, &out); err != nil {
		ts.t.Fatal(err)
	}
	return out, string(data)
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, eng.url(t), nil)
			adminToken, adminID := ts.user("admin@example.com")
			memberToken, memberID := ts.user("member@example.com")

			// Failed logins: a known email with a wrong password, and an
			// unknown email.
			for _, email := range []string{"member@example.com", "nobody@example.com"} {
				if code, _ := ts.raw("POST", "/api/v1/auth/login", "", "req-badlogin", map[string]string{"email": email, "password": "wrong password 123"}); code != http.StatusUnauthorized {
					t.Fatalf("bad login %s = %d", email, code)
				}
			}

			// An environment's whole life, each request with its own id.
			var created struct {
				Environment sdk.Environment `json:"environment"`
			}
			code, data := ts.raw("POST", "/api/v1/environments", memberToken, "req-create", map[string]any{"name": "audited"})
			if code != http.StatusCreated || json.Unmarshal(data, &created) != nil {
				t.Fatalf("create = %d %s", code, data)
			}
			env := created.Environment
			ts.waitStatus(memberToken, env.ID, sdk.StatusRunning)
			if code, _ := ts.raw("POST", "/api/v1/environments/"+env.ID+"/stop", memberToken, "req-stop", nil); code != http.StatusOK {
				t.Fatalf("stop = %d", code)
			}
			ts.waitStatus(memberToken, env.ID, sdk.StatusStopped)
			if code, _ := ts.raw("POST", "/api/v1/environments/"+env.ID+"/start", memberToken, "req-start", nil); code != http.StatusOK {
				t.Fatalf("start = %d", code)
			}
			ts.waitStatus(memberToken, env.ID, sdk.StatusRunning)
			if code, _ := ts.raw("DELETE", "/api/v1/environments/"+env.ID, memberToken, "req-delete", nil); code != http.StatusOK {
				t.Fatalf("delete = %d", code)
			}
			if _, err := ts.srv.Manager.WaitFor(ts.ctx, env.ID, func(e store.Environment) bool { return e.DeletedAt != nil }); err != nil {
				t.Fatalf("waiting for delete: %v", err)
			}

			// Tokens.
			var tok createdToken
			code, data = ts.raw("POST", "/api/v1/tokens", memberToken, "req-token", map[string]any{"name": "ci"})
			if code != http.StatusCreated || json.Unmarshal(data, &tok) != nil {
				t.Fatalf("create token = %d %s", code, data)
			}
			if code, _ := ts.raw("DELETE", "/api/v1/tokens/"+tok.APIToken.ID, memberToken, "req-revoke", nil); code != http.StatusOK {
				t.Fatalf("revoke = %d", code)
			}

			// An idle stop: the system acts.
			idle := ts.create(memberToken, sdk.CreateEnvironmentRequest{Name: "idle", AutoStopMinutes: minutes(1)})
			ts.waitStatus(memberToken, idle.ID, sdk.StatusRunning)
			ts.clock.Advance(70 * time.Second)
			ts.waitStatus(memberToken, idle.ID, sdk.StatusStopped)

			// Members may not read the log.
			if _, err := ts.client(memberToken).AuditEvents(ts.ctx, sdk.AuditFilter{}); !isAPIError(err, http.StatusForbidden, sdk.CodeForbidden) {
				t.Fatalf("member GET /audit = %v, want 403", err)
			}
			if _, err := ts.client("").AuditEvents(ts.ctx, sdk.AuditFilter{}); !isAPIError(err, http.StatusUnauthorized, "") {
				t.Fatalf("anonymous GET /audit = %v, want 401", err)
			}

			all, raw := ts.audit(adminToken, url.Values{"limit": {"500"}})
			if all.Total != len(all.Events) {
				t.Fatalf("total %d, %d events", all.Total, len(all.Events))
			}
			for i := 1; i < len(all.Events); i++ {
				if all.Events[i].CreatedAt.After(all.Events[i-1].CreatedAt) {
					t.Fatalf("events not newest first at %d", i)
				}
			}
			if strings.Contains(raw, "wrong password 123") || strings.Contains(raw, tok.Token) || strings.Contains(raw, memberToken) {
				t.Fatal("the audit log holds a password or a token secret")
			}
			find := func(action, objectID string) sdk.AuditEvent {
				t.Helper()
				for _, ev := range all.Events {
					if ev.Action == action && ev.ObjectID == objectID {
						return ev
					}
				}
				t.Fatalf("no %s event for %q in %+v", action, objectID, all.Events)
				return sdk.AuditEvent{}
			}
			actor := func(ev sdk.AuditEvent) string {
				if ev.ActorUserID == nil {
					return "<nil>"
				}
				return *ev.ActorUserID
			}
			for _, c := range []struct{ action, objectID, requestID string }{
				{"environment.create", env.ID, "req-create"},
				{"environment.stop", env.ID, "req-stop"},
				{"environment.start", env.ID, "req-start"},
				{"environment.delete", env.ID, "req-delete"},
				{"token.create", tok.APIToken.ID, "req-token"},
				{"token.revoke", tok.APIToken.ID, "req-revoke"},
			} {
				ev := find(c.action, c.objectID)
				if actor(ev) != memberID || ev.ActorKind != "user" || ev.IP != "127.0.0.1" || ev.RequestID != c.requestID || !ev.Success {
					t.Errorf("%s = %+v, want by %s from 127.0.0.1 with request id %s", c.action, ev, memberID, c.requestID)
				}
			}
			if ev := find("environment.create", env.ID); ev.ObjectType != "environment" || ev.Detail["name"] != "audited" {
				t.Errorf("create event = %+v", ev)
			}
			if ev := find("auth.signup", memberID); actor(ev) != memberID || !ev.Success || ev.Detail["email"] != "member@example.com" || ev.IP != "127.0.0.1" {
				t.Errorf("signup event = %+v", ev)
			}
			if ev := find("auth.signup", adminID); ev.Detail["role"] != "admin" {
				t.Errorf("admin signup event = %+v", ev)
			}
			var loginOK int
			for _, ev := range all.Events {
				if ev.Action == "auth.login" && ev.Success && actor(ev) == memberID && ev.ObjectID == memberID {
					loginOK++
				}
			}
			if loginOK != 1 {
				t.Errorf("%d successful member logins recorded, want 1", loginOK)
			}
			known := find("auth.login", memberID)
			for _, ev := range all.Events {
				if ev.Action == "auth.login" && !ev.Success && ev.ObjectID == memberID {
					known = ev
				}
			}
			if known.Success || known.ActorUserID != nil || known.Detail["email"] != "member@example.com" || known.RequestID != "req-badlogin" || known.IP != "127.0.0.1" {
				t.Errorf("failed login for a known email = %+v", known)
			}
			unknown := find("auth.login", "")
			if unknown.Success || unknown.Detail["email"] != "nobody@example.com" {
				t.Errorf("failed login for an unknown email = %+v", unknown)
			}
			idleEv := find("environment.idle_stop", idle.ID)
			if idleEv.ActorKind != "system" || idleEv.ActorUserID != nil || idleEv.IP != "" || !idleEv.Success || idleEv.Detail["owner_id"] != memberID {
				t.Errorf("idle stop = %+v", idleEv)
			}

			// Filters.
			admin := ts.client(adminToken)
			check := func(f sdk.AuditFilter, want func(sdk.AuditEvent) bool, wantTotal int) {
				t.Helper()
				got, err := admin.AuditEvents(ts.ctx, f)
				if err != nil {
					t.Fatalf("audit %+v: %v", f, err)
				}
				if wantTotal >= 0 && got.Total != wantTotal {
					t.Errorf("%+v: total %d, want %d", f, got.Total, wantTotal)
				}
				for _, ev := range got.Events {
					if !want(ev) {
						t.Errorf("%+v: event %+v does not match", f, ev)
					}
				}
			}
			check(sdk.AuditFilter{Action: "environment.stop"}, func(ev sdk.AuditEvent) bool { return ev.Action == "environment.stop" }, 1)
			check(sdk.AuditFilter{ObjectType: "environment", ObjectID: env.ID}, func(ev sdk.AuditEvent) bool { return ev.ObjectID == env.ID }, 4)
			check(sdk.AuditFilter{Actor: memberID}, func(ev sdk.AuditEvent) bool { return actor(ev) == memberID }, -1)
			check(sdk.AuditFilter{ObjectType: "token"}, func(ev sdk.AuditEvent) bool { return ev.ObjectType == "token" }, 2)
			check(sdk.AuditFilter{Since: ts.clock.Now().Add(time.Hour)}, func(sdk.AuditEvent) bool { return false }, 0)
			check(sdk.AuditFilter{Until: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, func(sdk.AuditEvent) bool { return false }, 0)
			page, err := admin.AuditEvents(ts.ctx, sdk.AuditFilter{Limit: 2, Offset: 1})
			if err != nil || len(page.Events) != 2 || page.Total != all.Total || page.Events[0].ID != all.Events[1].ID {
				t.Errorf("limit 2 offset 1 = %+v, %v", page, err)
			}
			// Bad filters are bad input: checked on the wire.
			var e sdk.ErrorResponse
			for _, q := range []string{"since=yesterday", "limit=0", "limit=501", "offset=-1"} {
				if code := ts.call("GET", "/api/v1/audit?"+q, adminToken, nil, &e); code != http.StatusBadRequest {
					t.Errorf("GET /audit?%s = %d, want 400", q, code)
				}
			}
		})
	}
}

// TestAuditRetention: the server deletes audit events older than
// --audit-retention on its own, from its start on, and keeps the rest
// (issue 15 finding 12).
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startServerAt(t, dataDir, "127.0.0.1:0")
	now := first.clock.Now()
	for _, age := range []time.Duration{50 * time.Hour, 25 * time.Hour, time.Hour} {
		if err := first.srv.Store.InsertAuditEvent(first.ctx, store.AuditEvent{CreatedAt: now.Add(-age), ActorKind: store.ActorSystem,
			Action: "test.aged", Detail: map[string]any{"age": age.String()}}); err != nil {
			t.Fatal(err)
		}
	}
	first.stop()

	second := wrap(t, devserver.Start(t, devserver.Options{DataDir: dataDir, Config: func(c *server.Config) { c.AuditRetention = 24 * time.Hour }}))
	ctx := wait.Context(t, wait.Medium)
	var left []store.AuditEvent
	wait.Eventually(ctx, t, "the events older than a day to be deleted", func() bool {
		events, _, err := second.srv.Store.ListAuditEvents(ctx, store.AuditFilter{Action: "test.aged"})
		if err != nil {
			t.Fatal(err)
		}
		left = events
		return len(events) <= 1
	})
	if len(left) != 1 || left[0].Detail["age"] != "1h0m0s" {
		t.Fatalf("kept %+v, want only the hour-old event", left)
	}
}

package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

func TestPatchMeChangesName(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	u, token := f.user("ada@example.com", "correct horse")

	rec := f.do("PATCH", "/api/v1/auth/me", reqOpts{token: token, body: `{"name":"  Ada Lovelace  "}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("PATCH /auth/me = %d %s", rec.Code, rec.Body.String())
	}
	var out struct{ User sdk.User }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.User.Name != "Ada Lovelace" || out.User.Email != "ada@example.com" || out.User.ID != u.ID {
		t.Fatalf("answer %+v", out.User)
	}
	got, err := f.db.GetUser(t.Context(), u.ID)
	if err != nil || got.Name != "Ada Lovelace" {
		t.Fatalf("stored name %q, %v", got.Name, err)
	}

	for _, body := range []string{`{}`, `{"name":"` + strings.Repeat("x", maxNameLength+1) + `"}`, `{"name":"a\u0007b"}`, `{"name":"x","email":"e@example.com"}`} {
		rec := f.do("PATCH", "/api/v1/auth/me", reqOpts{token: token, body: body})
		if rec.Code != http.StatusBadRequest {
			t.Errorf("PATCH /auth/me %s = %d %s, want 400", body, rec.Code, rec.Body.String())
		}
	}
	if got, _ := f.db.GetUser(t.Context(), u.ID); got.Name != "Ada Lovelace" {
		t.Fatalf("a refused request changed the name to %q", got.Name)
	}
	events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{Action: "user.profile_update", Limit: 10})
	if err != nil || len(events) != 1 || events[0].ActorUserID != u.ID || !events[0].Success {
		t.Fatalf("audit events %+v, %v", events, err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	u, apiToken := f.user("ada@example.com", "correct horse")
	here, _ := f.login("ada@example.com", "correct horse", false)
	other, _ := f.login("ada@example.com", "correct horse", false)

	post := func(token, body string) int {
		t.Helper()
		return f.do("POST", "/api/v1/auth/password", reqOpts{token: token, body: body}).Code
	}
	if c := post(here.Token, `{"current_password":"wrong horse","new_password":"battery staple"}`); c != http.StatusForbidden {
		t.Fatalf("wrong current password = %d, want 403", c)
	}
	if c := post(here.Token, `{"current_password":"correct horse","new_password":"short"}`); c != http.StatusBadRequest {
		t.Fatalf("short new password = %d, want 400", c)
	}
	if c := post(here.Token, `{"new_password":"battery staple"}`); c != http.StatusBadRequest {
		t.Fatalf("no current password = %d, want 400", c)
	}
	// A cookie without the CSRF token changes nothing.
	rec := f.do("POST", "/api/v1/auth/password", reqOpts{headers: cookieHeader(here.Token),
		body: `{"current_password":"correct horse","new_password":"battery staple"}`})
	wantError(t, rec, http.StatusForbidden, httpapi.CodeCSRFFailed)

	rec = f.do("POST", "/api/v1/auth/password", reqOpts{token: here.Token, body: `{"current_password":"correct horse","new_password":"battery staple"}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("change password = %d %s", rec.Code, rec.Body.String())
	}
	var out struct {
		SessionsRevoked int64 `json:"sessions_revoked"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.SessionsRevoked != 1 {
		t.Fatalf("answer %s (%v), want 1 session revoked", rec.Body.String(), err)
	}
	if c := f.do("GET", "/api/v1/auth/me", reqOpts{token: here.Token}).Code; c != http.StatusOK {
		t.Errorf("the session that changed the password: /auth/me = %d, want 200", c)
	}
	if c := f.do("GET", "/api/v1/auth/me", reqOpts{token: other.Token}).Code; c != http.StatusUnauthorized {
		t.Errorf("another session after the change: /auth/me = %d, want 401", c)
	}
	if c := f.do("GET", "/api/v1/auth/me", reqOpts{token: apiToken}).Code; c != http.StatusOK {
		t.Errorf("an API token after the change: /auth/me = %d, want 200 (tokens are not revoked)", c)
	}
	if c := f.do("POST", "/api/v1/auth/login", reqOpts{body: `{"email":"ada@example.com","password":"correct horse"}`}).Code; c != http.StatusUnauthorized {
		t.Errorf("login with the old password = %d, want 401", c)
	}
	f.login("ada@example.com", "battery staple", false)

	events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{Action: "user.password_change", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	for _, e := range events {
		if e.ActorUserID != u.ID || e.ObjectID != u.ID {
			t.Errorf("event %+v: actor and object should be the user", e)
		}
		if e.Success {
			ok++
		} else {
			failed++
		}
		for _, v := range e.Detail {
			if s, _ := v.(string); strings.Contains(s, "horse") || strings.Contains(s, "staple") {
				t.Errorf("event %+v records a password", e)
			}
		}
	}
	if ok != 1 || failed != 1 {
		t.Errorf("audit: %d successful and %d failed password changes, want 1 and 1 (wrong password)", ok, failed)
	}
}

func TestChangePasswordLockout(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	_, token := f.user("ada@example.com", "correct horse")
	var last int
	for i := 0; i < 50; i++ {
		last = f.do("POST", "/api/v1/auth/password", reqOpts{token: token, body: `{"current_password":"guess","new_password":"battery staple"}`}).Code
		if last == http.StatusTooManyRequests {
			break
		}
		if last != http.StatusForbidden {
			t.Fatalf("guess %d = %d, want 403 or 429", i, last)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatal("50 wrong current passwords were never throttled")
	}
	// Locked, even the right password is refused for now.
	if c := f.do("POST", "/api/v1/auth/password", reqOpts{token: token, body: `{"current_password":"correct horse","new_password":"battery staple"}`}).Code; c != http.StatusTooManyRequests {
		t.Fatalf("right password while locked = %d, want 429", c)
	}
}

func TestPatchMeDefaultAutoStop(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	u, token := f.user("ada@example.com", "correct horse")
	patch := func(body string) (int, sdk.User) {
		t.Helper()
		rec := f.do("PATCH", "/api/v1/auth/me", reqOpts{token: token, body: body})
		var out struct{ User sdk.User }
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out.User
	}
	stored := func() *int {
		t.Helper()
		got, err := f.db.GetUser(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.DefaultAutoStopMinutes
	}
	if code, user := patch(`{"default_auto_stop_minutes":120}`); code != http.StatusOK || user.DefaultAutoStopMinutes == nil || *user.DefaultAutoStopMinutes != 120 {
		t.Fatalf("set 120: %d %+v", code, user)
	}
	// Absent keeps it; a name change leaves it alone.
	if code, user := patch(`{"name":"Ada"}`); code != http.StatusOK || user.DefaultAutoStopMinutes == nil || *user.DefaultAutoStopMinutes != 120 {
		t.Fatalf("name only: %d %+v", code, user)
	}
	for _, body := range []string{`{"default_auto_stop_minutes":-1}`, `{"default_auto_stop_minutes":10081}`, `{"default_auto_stop_minutes":"60"}`, `{"default_auto_stop_minutes":1.5}`} {
		if code, _ := patch(body); code != http.StatusBadRequest {
			t.Errorf("PATCH %s = %d, want 400", body, code)
		}
	}
	if got := stored(); got == nil || *got != 120 {
		t.Fatalf("a refused request changed the default to %v", got)
	}
	if code, user := patch(`{"default_auto_stop_minutes":0}`); code != http.StatusOK || user.DefaultAutoStopMinutes == nil || *user.DefaultAutoStopMinutes != 0 {
		t.Fatalf("set 0 (never): %d %+v", code, user)
	}
	// null goes back to the server's default.
	if code, user := patch(`{"default_auto_stop_minutes":null}`); code != http.StatusOK || user.DefaultAutoStopMinutes != nil {
		t.Fatalf("null: %d %+v", code, user)
	}
	if got := stored(); got != nil {
		t.Fatalf("stored default after null = %v", *got)
	}
}

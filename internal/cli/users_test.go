package cli

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

func TestUsersCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("root@example.com") // the first user: admin
	malloryToken := h.user("mallory@example.com")
	mallory := sdk.New(h.url, malloryToken)

	out, _, err := h.run("", "users", "ls")
	if err != nil {
		t.Fatalf("users ls: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "root@example.com") || !strings.Contains(lines[1], " admin ") ||
		!strings.Contains(lines[2], "mallory@example.com") || !strings.Contains(lines[2], " member ") || !strings.Contains(lines[2], " active ") {
		t.Fatalf("users ls =\n%s", out)
	}

	if out, _, err := h.run("", "users", "suspend", "mallory@example.com"); err != nil || !strings.Contains(out, "Suspended mallory@example.com") {
		t.Fatalf("users suspend: %q, %v", out, err)
	}
	if _, err := mallory.Me(h.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("a suspended user's token: %v, want 401", err)
	}
	out, _, err = h.run("", "users", "ls", "--suspended", "true", "--json")
	if err != nil {
		t.Fatalf("users ls --json: %v", err)
	}
	var users []sdk.ManagedUser
	if err := json.Unmarshal([]byte(out), &users); err != nil || len(users) != 1 || users[0].Email != "mallory@example.com" || !users[0].Suspended {
		t.Fatalf("users ls --suspended true --json = %s (%v)", out, err)
	}
	if _, _, err := h.run("", "users", "unsuspend", "mallory@example.com"); err != nil {
		t.Fatalf("users unsuspend: %v", err)
	}
	if _, err := mallory.Me(h.ctx); err != nil {
		t.Fatalf("an unsuspended user's token: %v", err)
	}

	// The last admin stays.
	if _, _, err := h.run("", "users", "demote", "root@example.com"); err == nil || !strings.Contains(err.Error(), "no active admin") {
		t.Fatalf("demote the last admin: %v", err)
	}
	if _, _, err := h.run("", "users", "promote", "mallory@example.com"); err != nil {
		t.Fatalf("users promote: %v", err)
	}
	if me, err := mallory.Me(h.ctx); err != nil || me.Role != "admin" {
		t.Fatalf("after promote: %+v, %v", me, err)
	}
	if _, _, err := h.run("", "users", "suspend", "nobody@example.com"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("unknown user: %v", err)
	}
	// A member is refused.
	if _, err := sdk.New(h.url, h.user("eve@example.com")).ListUsers(h.ctx, sdk.UserFilter{}); err == nil || !strings.Contains(err.Error(), "admins") {
		t.Fatalf("member lists users: %v", err)
	}
}

// The server's quota settings reach the API: over them a create is 403
// QUOTA_EXCEEDED, and GET /auth/me shows the limits; an admin's override
// lifts them.
func TestServerQuotas(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *server.Config) { c.Quotas = &quota.Limits{MaxEnvironments: 1, MaxRunningEnvironments: 1} })
	root := h.login("root@example.com")
	eve := sdk.New(h.url, h.user("eve@example.com"))
	if _, err := eve.CreateEnvironment(h.ctx, sdk.CreateEnvironmentRequest{Name: "first"}); err != nil {
		t.Fatalf("first create: %v", err)
	}
	_, err := eve.CreateEnvironment(h.ctx, sdk.CreateEnvironmentRequest{Name: "second"})
	var apiErr *sdk.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Code != "QUOTA_EXCEEDED" ||
		!strings.Contains(apiErr.Details, "the limit is 1 environments and 1 are in use") {
		t.Fatalf("second create: %v", err)
	}
	me, err := eve.Me(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, quota, err := eve.GetUser(h.ctx, me.ID)
	if err != nil || quota.MaxEnvironments != 1 || quota.Environments != 1 || quota.RunningEnvironments != 1 {
		t.Fatalf("eve's quota: %+v, %v", quota, err)
	}
	if _, _, err := root.UpdateUser(h.ctx, me.ID, sdk.UserUpdate{Quota: map[string]any{"max_environments": 2, "max_running_environments": nil}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eve.CreateEnvironment(h.ctx, sdk.CreateEnvironmentRequest{Name: "second"}); err == nil || !strings.Contains(err.Error(), "running environments") {
		// max_running_environments went back to the server's 1.
		t.Fatalf("second create, running limit: %v", err)
	}
	if _, _, err := root.UpdateUser(h.ctx, me.ID, sdk.UserUpdate{Quota: map[string]any{"max_running_environments": 0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eve.CreateEnvironment(h.ctx, sdk.CreateEnvironmentRequest{Name: "second"}); err != nil {
		t.Fatalf("second create within the override: %v", err)
	}
}

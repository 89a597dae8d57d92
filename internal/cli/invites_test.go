package cli

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"dev8.dev/dev8/sdk"
)

func TestInvitesCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil) // the default signup policy: invite
	h.login("root@example.com")

	// Without an invite a second person cannot sign up.
	anon := sdk.New(h.url, "")
	if _, err := anon.Signup(h.ctx, "ada@example.com", "correct horse", "Ada"); !sdk.IsCode(err, sdk.CodeInviteRequired) {
		t.Fatalf("uninvited signup: %v, want %s", err, sdk.CodeInviteRequired)
	}

	out, errOut, err := h.run("", "invites", "create", "--email", "ada@example.com")
	if err != nil {
		t.Fatalf("invites create: %v\n%s", err, errOut)
	}
	link, err := url.Parse(strings.TrimSpace(out))
	if err != nil || link.Scheme+"://"+link.Host != h.url || link.Path != "/signup" || link.Query().Get("invite") == "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("invites create printed %q: want the link alone on a line", out)
	}
	if !strings.Contains(errOut, "ada@example.com") || !strings.Contains(errOut, "member") || !strings.Contains(errOut, "not shown again") {
		t.Errorf("invites create said %q", errOut)
	}
	token := link.Query().Get("invite")
	if _, err := anon.SignupWithInvite(h.ctx, "eve@example.com", "correct horse", "Eve", token); !sdk.IsCode(err, sdk.CodeInviteInvalid) {
		t.Fatalf("signup with ada's invite as eve: %v, want %s", err, sdk.CodeInviteInvalid)
	}
	if u, err := anon.SignupWithInvite(h.ctx, "ada@example.com", "correct horse", "Ada", token); err != nil || u.Role != "member" {
		t.Fatalf("signup with the invite: %+v, %v", u, err)
	}

	// Used invites are not pending.
	if out, _, err := h.run("", "invites", "ls"); err != nil || !strings.Contains(out, "No pending invites") {
		t.Fatalf("invites ls after its use: %q, %v", out, err)
	}
	out, _, err = h.run("", "invites", "create", "--role", "admin", "--expires-in-days", "1")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = h.run("", "invites", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], " anyone ") || !strings.Contains(lines[1], " admin ") || !strings.Contains(lines[1], " pending ") {
		t.Fatalf("invites ls =\n%s (%v)", out, err)
	}
	id := strings.Fields(lines[1])[0]
	out, _, err = h.run("", "invites", "ls", "--all", "--json")
	var all []sdk.Invite
	if err != nil || json.Unmarshal([]byte(out), &all) != nil || len(all) != 2 || all[0].ID != id || all[1].State != "used" || all[1].Email != "ada@example.com" {
		t.Fatalf("invites ls --all --json = %s (%v)", out, err)
	}
	if strings.Contains(out, "dev8inv_") {
		t.Error("invites ls shows a token")
	}

	if out, _, err := h.run("", "invites", "revoke", id); err != nil || !strings.Contains(out, "Revoked invite "+id) {
		t.Fatalf("invites revoke: %q, %v", out, err)
	}
	if _, _, err := h.run("", "invites", "revoke", id); err == nil || !strings.Contains(err.Error(), "revoked already") {
		t.Errorf("revoke twice: %v", err)
	}
	if _, _, err := h.run("", "invites", "create", "--role", "owner"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("invites create --role owner: %v", err)
	}

	// A member may not.
	member := h.user("bob@example.com")
	if _, _, err := h.run("", "invites", "create", "--token", member); err == nil || !strings.Contains(err.Error(), "admins") {
		t.Errorf("a member's invites create: %v", err)
	}
}

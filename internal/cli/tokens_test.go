package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"dev8.dev/dev8/sdk"
)

func TestTokensCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")

	out, errOut, err := h.run("", "tokens", "create", "ci", "--expires-in-days", "7")
	if err != nil {
		t.Fatalf("tokens create: %v\n%s%s", err, out, errOut)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "dev8_") || strings.Contains(secret, "\n") {
		t.Fatalf("tokens create printed %q, want the secret alone", out)
	}
	if !strings.Contains(errOut, `Created token "ci"`) || !strings.Contains(errOut, "not shown again") {
		t.Errorf("tokens create said %q", errOut)
	}
	if me, err := sdk.New(h.url, secret).Me(h.ctx); err != nil || me.Email != "ada@example.com" {
		t.Fatalf("the new token: %v, %v", me, err)
	}

	out, _, err = h.run("", "tokens", "ls")
	if err != nil {
		t.Fatalf("tokens ls: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The login is a session, not a token: only ci is listed.
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], " ci ") {
		t.Fatalf("tokens ls =\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, h.storedConfig().Token) {
		t.Fatal("tokens ls shows a secret")
	}

	out, _, err = h.run("", "tokens", "ls", "--json")
	if err != nil {
		t.Fatalf("tokens ls --json: %v", err)
	}
	var toks []sdk.APIToken
	if err := json.Unmarshal([]byte(out), &toks); err != nil || len(toks) != 1 || toks[0].Name != "ci" || toks[0].ExpiresAt == nil {
		t.Fatalf("tokens ls --json = %s (%v)", out, err)
	}
	if strings.Contains(out, secret) {
		t.Fatal("tokens ls --json shows a secret")
	}

	if _, _, err := h.run("", "tokens", "create", "ci"); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, _, err := h.run("", "tokens", "create", "long", "--expires-in-days", "400"); err == nil || !strings.Contains(err.Error(), "expires_in_days") {
		t.Fatalf("over the maximum lifetime: %v", err)
	}

	out, _, err = h.run("", "tokens", "rm", toks[0].ID)
	if err != nil || !strings.Contains(out, "Revoked token "+toks[0].ID) {
		t.Fatalf("tokens rm = %q, %v", out, err)
	}
	if _, err := sdk.New(h.url, secret).Me(h.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("revoked token: %v, want 401", err)
	}
	if _, _, err := h.run("", "tokens", "rm", toks[0].ID); !sdk.IsNotFound(err) {
		t.Fatalf("revoking twice: %v, want not found", err)
	}
}

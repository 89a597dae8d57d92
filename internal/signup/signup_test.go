package signup_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]signup.Policy{"open": signup.Open, "Invite": signup.Invite, " CLOSED ": signup.Closed} {
		if got, err := signup.ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "invites", "public"} {
		if _, err := signup.ParsePolicy(in); err == nil || !strings.Contains(err.Error(), "open, invite or closed") {
			t.Errorf("ParsePolicy(%q): err = %v, want one naming the choices", in, err)
		}
	}
}

func TestParseDomains(t *testing.T) {
	t.Parallel()
	got, err := signup.ParseDomains(" Example.com, ,dev.example.org,xn--bcher-kva.example")
	if want := []string{"example.com", "dev.example.org", "xn--bcher-kva.example"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseDomains = %q, %v; want %q", got, err, want)
	}
	if got, err := signup.ParseDomains(""); err != nil || got != nil {
		t.Errorf("ParseDomains(\"\") = %q, %v; want none", got, err)
	}
	for _, bad := range []string{"@example.com", "*.example.com", "localhost", "example.com.", ".example.com", "10.0.0.1",
		"exa mple.com", "-a.example.com", "a..example.com", "ex_ample.com", strings.Repeat("a", 64) + ".com"} {
		if _, err := signup.ParseDomains("example.org," + bad); err == nil {
			t.Errorf("ParseDomains accepted %q", bad)
		}
	}
}

func TestInviteTokens(t *testing.T) {
	t.Parallel()
	a, ha, err := signup.NewInviteToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := signup.NewInviteToken()
	if a == b || !strings.HasPrefix(a, signup.InviteTokenPrefix) {
		t.Fatalf("tokens %q, %q", a, b)
	}
	if h, ok := signup.HashInviteToken(a); !ok || string(h) != string(ha) {
		t.Errorf("HashInviteToken(token) = %x, %v; want %x", h, ok, ha)
	}
	for _, bad := range []string{"", a[:len(a)-1], a + "x", "dev8_" + a[len(signup.InviteTokenPrefix):]} {
		if _, ok := signup.HashInviteToken(bad); ok {
			t.Errorf("HashInviteToken(%q) accepted it", bad)
		}
	}
}

// gateOn is a gate over a fresh SQLite store whose clock the test reads.
func gateOn(t *testing.T, policy signup.Policy, domains ...string) (*signup.Gate, *store.DB, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	return signup.New(signup.Config{Policy: policy, AllowedDomains: domains, Store: db, Now: func() time.Time { return now }}), db, now
}

func TestGate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, tc := range []struct {
		policy  signup.Policy
		refusal error
	}{{signup.Invite, signup.ErrInviteRequired}, {signup.Closed, signup.ErrSignupClosed}} {
		g, db, _ := gateOn(t, tc.policy, "example.com")
		if ok, err := g.SelfService(ctx); err != nil || !ok {
			t.Errorf("%s, no users: SelfService = %v, %v; want true (the first user)", tc.policy, ok, err)
		}
		if _, err := db.CreateUser(ctx, store.User{Email: "admin@example.com"}); err != nil {
			t.Fatal(err)
		}
		if ok, err := g.SelfService(ctx); err != nil || ok {
			t.Errorf("%s, a user: SelfService = %v, %v; want false", tc.policy, ok, err)
		}
		if g.Refusal() != tc.refusal {
			t.Errorf("%s: Refusal = %v, want %v", tc.policy, g.Refusal(), tc.refusal)
		}
	}
	open, db, _ := gateOn(t, signup.Open)
	db.CreateUser(ctx, store.User{Email: "admin@example.com"})
	if ok, err := open.SelfService(ctx); err != nil || !ok || open.Policy() != signup.Open {
		t.Errorf("open: SelfService = %v, %v", ok, err)
	}
	if signup.New(signup.Config{}).Policy() != signup.Invite {
		t.Error("the default policy is not invite")
	}

	// Domains count under invite only, and exactly.
	inv, _, _ := gateOn(t, signup.Invite, "example.com")
	closed, _, _ := gateOn(t, signup.Closed, "example.com")
	openD, _, _ := gateOn(t, signup.Open, "example.com")
	for email, want := range map[string]bool{"ada@example.com": true, "ADA@EXAMPLE.COM": true, "ada@dev.example.com": false,
		"ada@example.com.evil.test": false, "ada@notexample.com": false, "example.com": false} {
		if got := inv.DomainAllowed(email); got != want {
			t.Errorf("invite: DomainAllowed(%q) = %v, want %v", email, got, want)
		}
		if closed.DomainAllowed(email) || openD.DomainAllowed(email) {
			t.Errorf("DomainAllowed(%q) under closed or open: domains count under invite only", email)
		}
	}
}

func TestGateInvite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g, db, now := gateOn(t, signup.Invite)
	admin, _ := db.CreateUser(ctx, store.User{Email: "admin@example.com"})
	mk := func(email string, expires time.Time) string {
		t.Helper()
		token, hash, err := signup.NewInviteToken()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateInvite(ctx, store.Invite{Hash: hash, Email: email, Role: store.RoleMember, CreatedBy: admin.ID, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		return token
	}
	reason := func(err error) signup.InviteReason {
		var ie *signup.InviteError
		if errors.As(err, &ie) {
			return ie.Reason
		}
		return "not an InviteError: " + signup.InviteReason(errOrNil(err))
	}
	bound := mk("bob@example.com", now.Add(time.Hour))
	anyone := mk("", now.Add(time.Hour))
	expired := mk("", now) // expires the moment it is asked
	revoked := mk("", now.Add(time.Hour))
	if inv, err := g.Invite(ctx, revoked, ""); err != nil {
		t.Fatal(err)
	} else if _, err := db.RevokeInvite(ctx, inv.ID, now); err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := signup.NewInviteToken()

	if inv, err := g.Invite(ctx, bound, ""); err != nil || inv.Email != "bob@example.com" {
		t.Errorf("bound invite, no email yet: %+v, %v", inv, err)
	}
	if _, err := g.Invite(ctx, bound, "Bob@Example.com"); err != nil {
		t.Errorf("bound invite, its email in another case: %v", err)
	}
	if _, err := g.Invite(ctx, anyone, "anyone@example.org"); err != nil {
		t.Errorf("unbound invite: %v", err)
	}
	for _, tc := range []struct {
		token, email string
		want         signup.InviteReason
	}{
		{bound, "eve@example.com", signup.InviteOtherEmail},
		{expired, "", signup.InviteExpired},
		{revoked, "", signup.InviteRevoked},
		{unknown, "", signup.InviteUnknown},
		{"not-a-token", "", signup.InviteUnknown},
	} {
		if _, err := g.Invite(ctx, tc.token, tc.email); reason(err) != tc.want {
			t.Errorf("Invite(%.14s…, %q): %v, want reason %s", tc.token, tc.email, err, tc.want)
		}
	}
	// Used: after a signup with it.
	hash, _ := signup.HashInviteToken(anyone)
	if _, _, err := db.CreateInvitedUser(ctx, store.User{Email: "carol@example.com"}, hash, now, g.Usable("carol@example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Invite(ctx, anyone, ""); reason(err) != signup.InviteUsed {
		t.Errorf("used invite: %v", err)
	}
}

func errOrNil(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

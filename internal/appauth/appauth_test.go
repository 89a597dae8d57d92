package appauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/testutil/testclock"
)

var (
	ide   = appurl.App{EnvironmentID: "env_k3xq7w2m9p4r8t6y1z0a"}
	port  = appurl.App{EnvironmentID: "env_k3xq7w2m9p4r8t6y1z0a", Port: 3000}
	other = appurl.App{EnvironmentID: "env_aaaaaaaaaaaaaaaaaaaa"}
	grant = Grant{App: ide, UserID: "usr_ada", Parent: Parent{Kind: ParentSession, ID: "ses_1"}, Path: "/?folder=/workspace"}
)

// TestTickets: a ticket is redeemed once, only for its app, only before it
// expires.
func TestTickets(t *testing.T) {
	t.Parallel()
	clk := testclock.At(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	tk := NewTickets(0, clk.Now)

	secret, expires, err := tk.Mint(grant)
	if err != nil || !strings.HasPrefix(secret, ticketPrefix) || !expires.Equal(clk.Now().Add(DefaultTicketTTL)) {
		t.Fatalf("Mint = %q, %v, %v", secret, expires, err)
	}
	got, err := tk.Redeem(secret, ide)
	if err != nil || got != grant {
		t.Fatalf("Redeem = %+v, %v; want %+v", got, err, grant)
	}
	if _, err := tk.Redeem(secret, ide); err != ErrTicket {
		t.Errorf("a second redemption: %v, want ErrTicket", err)
	}

	// Another app's host: refused, and the ticket is spent.
	secret, _, _ = tk.Mint(grant)
	for _, app := range []appurl.App{port, other} {
		if _, err := tk.Redeem(secret, app); err != ErrTicket {
			t.Errorf("redeemed for %+v: %v, want ErrTicket", app, err)
		}
	}
	if _, err := tk.Redeem(secret, ide); err != ErrTicket {
		t.Errorf("after a refused redemption: %v, want ErrTicket", err)
	}

	// Expiry.
	secret, _, _ = tk.Mint(grant)
	clk.Advance(DefaultTicketTTL)
	if _, err := tk.Redeem(secret, ide); err != ErrTicket {
		t.Errorf("an expired ticket: %v, want ErrTicket", err)
	}
	for _, bad := range []string{"", "dev8t_", "nope", ticketPrefix + strings.Repeat("a", 200)} {
		if _, err := tk.Redeem(bad, ide); err != ErrTicket {
			t.Errorf("Redeem(%q): %v", bad, err)
		}
	}
	if tk.Waiting() != 0 {
		t.Errorf("%d tickets left waiting", tk.Waiting())
	}
}

// TestTicketsBounded: past MaxTickets waiting, Mint refuses until some
// expire (they are swept then).
func TestTicketsBounded(t *testing.T) {
	t.Parallel()
	clk := testclock.At(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	tk := NewTickets(time.Minute, clk.Now)
	for range MaxTickets {
		if _, _, err := tk.Mint(grant); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tk.Mint(grant); err != ErrTooMany {
		t.Fatalf("one more: %v, want ErrTooMany", err)
	}
	clk.Advance(time.Minute)
	if _, _, err := tk.Mint(grant); err != nil {
		t.Fatalf("after they expired: %v", err)
	}
	if tk.Waiting() != 1 {
		t.Errorf("%d waiting, want the expired ones swept", tk.Waiting())
	}
}

// TestSessions: a session cookie is valid for its app only, until it
// expires, and cannot be forged or altered.
func TestSessions(t *testing.T) {
	t.Parallel()
	clk := testclock.At(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	s := NewSessions([]byte("0123456789abcdef0123456789abcdef"), time.Hour, clk.Now)
	value, expires := s.Issue(grant)
	if !expires.Equal(clk.Now().Add(time.Hour)) {
		t.Errorf("expires %v", expires)
	}
	want := grant
	want.Path = "" // not kept
	got, issued, ok := s.Verify(value, ide)
	if !ok || got != want || !issued.Equal(clk.Now()) {
		t.Fatalf("Verify = %+v, %v, %v; want %+v", got, issued, ok, want)
	}
	for _, app := range []appurl.App{port, other} {
		if _, _, ok := s.Verify(value, app); ok {
			t.Errorf("valid for %+v", app)
		}
	}
	if s.NeedsRenewal(issued) {
		t.Error("a fresh session needs renewal")
	}
	enc, sig, _ := strings.Cut(value, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(enc)
	altered := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "usr_ada", "usr_bob", 1))) + "." + sig
	forged, _ := NewSessions([]byte("another key of thirty-two bytes!"), time.Hour, clk.Now).Issue(grant)
	for name, bad := range map[string]string{"altered": altered, "forged": forged, "no signature": enc, "empty": "", "garbage": "a.b"} {
		if _, _, ok := s.Verify(bad, ide); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	clk.Advance(10 * time.Minute)
	if !s.NeedsRenewal(issued) {
		t.Error("a session used 10 minutes after it was issued is not renewed")
	}
	clk.Advance(50 * time.Minute)
	if _, _, ok := s.Verify(value, ide); ok {
		t.Error("an expired session was accepted")
	}
}

package auth

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"dev8.dev/dev8/internal/store"
)

func TestPasswords(t *testing.T) {
	t.Parallel()
	p := NewPasswords(1) // raised to the floor
	hash, err := p.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != MinBcryptCost {
		t.Fatalf("cost = %d, %v; want %d", cost, err, MinBcryptCost)
	}
	if strings.Contains(hash, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if !p.Check(hash, "correct horse") {
		t.Fatal("right password rejected")
	}
	for _, wrong := range []string{"", "correct horse ", "Correct horse", "correct hors"} {
		if p.Check(hash, wrong) {
			t.Fatalf("wrong password %q accepted", wrong)
		}
	}
	if p.Check("", "") || p.Check("", "anything") {
		t.Fatal("an account without a password accepted a login")
	}
	if NewPasswords(0).cost != MinBcryptCost || NewPasswords(12).cost != 12 {
		t.Fatal("cost not clamped to the floor")
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		secret, hash, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < len(TokenPrefix)+43 {
			t.Fatalf("token %q: want prefix and 256 bits", secret)
		}
		if seen[secret] {
			t.Fatal("duplicate token")
		}
		seen[secret] = true
		if !bytes.Equal(hash, HashToken(secret)) || len(hash) != 32 {
			t.Fatal("stored hash is not sha256 of the secret")
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"Bearer  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"", "", false},
		{"abc", "", false},
	}
	for _, tt := range tests {
		got, ok := BearerToken(tt.header)
		if got != tt.want || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCanAccess(t *testing.T) {
	t.Parallel()
	owner := store.User{ID: "usr_a", Role: store.RoleMember}
	other := store.User{ID: "usr_b", Role: store.RoleMember}
	admin := store.User{ID: "usr_c", Role: store.RoleAdmin}
	if !CanAccess(owner, "usr_a") || CanAccess(other, "usr_a") || !CanAccess(admin, "usr_a") {
		t.Fatal("ownership rule broken")
	}
	if CanAccess(store.User{}, "") {
		t.Fatal("an empty user owns ownerless objects")
	}
}

func TestAgentTokens(t *testing.T) {
	t.Parallel()
	a := NewAgentTokens(bytes.Repeat([]byte{1}, AgentKeySize))
	tok := a.Issue("env_abc")
	if id, ok := a.Verify(tok); !ok || id != "env_abc" {
		t.Fatalf("Verify(own token) = %q, %v", id, ok)
	}
	other := NewAgentTokens(bytes.Repeat([]byte{2}, AgentKeySize))
	forged := strings.Replace(tok, "env_abc", "env_xyz", 1)
	for _, bad := range []string{
		"", "dev8a_", "dev8a_env_abc", "dev8a_env_abc.", "dev8a_.abc", forged,
		other.Issue("env_abc"), tok + "x", "dev8_" + tok[len(AgentTokenPrefix):],
	} {
		if id, ok := a.Verify(bad); ok {
			t.Errorf("Verify(%q) accepted for %q", bad, id)
		}
	}
}

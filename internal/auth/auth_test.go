package auth

import (
	"bytes"
	"encoding/base64"
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
	nonce := NewAgentNonce()
	env := store.Environment{ID: "env_abc", AgentTokenNonce: nonce}
	tok := a.Issue("env_abc", nonce)
	if id, ok := AgentTokenEnvironment(tok); !ok || id != "env_abc" {
		t.Fatalf("AgentTokenEnvironment(own token) = %q, %v", id, ok)
	}
	if !a.Verify(tok, env) {
		t.Fatalf("Verify(own token) refused")
	}
	other := NewAgentTokens(bytes.Repeat([]byte{2}, AgentKeySize))
	forged := strings.Replace(tok, "env_abc", "env_xyz", 1)
	for _, bad := range []string{
		"", "dev8a_", "dev8a_env_abc", "dev8a_env_abc.", "dev8a_.abc", forged,
		other.Issue("env_abc", nonce), tok + "x", "dev8_" + tok[len(AgentTokenPrefix):],
		// The token of an earlier run (another nonce), and a nonce swapped
		// into a genuine token.
		a.Issue("env_abc", NewAgentNonce()), strings.Replace(tok, nonce, NewAgentNonce(), 1),
		// The form tokens had before nonces, for an environment that is
		// not marked as running since then.
		"dev8a_env_abc." + tok[strings.LastIndexByte(tok, '.')+1:], a.legacyIssue("env_abc"),
		// The MAC's last character spelled otherwise with the same
		// significant bits (a loose decoder ignores its spare ones).
		respell(tok),
	} {
		if a.Verify(bad, env) {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	// Another environment, and one without a current run.
	if a.Verify(tok, store.Environment{ID: "env_xyz", AgentTokenNonce: nonce}) {
		t.Error("a token accepted for another environment with the same nonce")
	}
	if a.Verify(tok, store.Environment{ID: "env_abc"}) || a.Verify(a.Issue("env_abc", ""), store.Environment{ID: "env_abc"}) {
		t.Error("a token accepted for an environment with no current run")
	}
	if NewAgentNonce() == nonce || strings.ContainsAny(nonce, ".") {
		t.Errorf("nonces %q: not fresh, or contain a dot", nonce)
	}

	// A workspace running across the upgrade keeps its old token, and only
	// that: no token of the new form is valid for it.
	legacy := store.Environment{ID: "env_abc", AgentTokenNonce: store.LegacyAgentToken}
	if !a.Verify(a.legacyIssue("env_abc"), legacy) {
		t.Error("the legacy token of a legacy run refused")
	}
	for _, bad := range []string{other.legacyIssue("env_abc"), a.legacyIssue("env_xyz"), a.Issue("env_abc", store.LegacyAgentToken), tok} {
		if a.Verify(bad, legacy) {
			t.Errorf("Verify(%q) accepted for a legacy run", bad)
		}
	}
}

// legacyIssue is how tokens were made before nonces.
func (a *AgentTokens) legacyIssue(environmentID string) string {
	return AgentTokenPrefix + environmentID + "." + base64.RawURLEncoding.EncodeToString(a.legacyMAC(environmentID))
}

// respell writes tok's last base64 character (4 significant bits of a
// 32-byte MAC's 43 characters, 2 spare) with other spare bits.
func respell(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i^1])
}

package auth

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCSRFTokens(t *testing.T) {
	t.Parallel()
	c := NewCSRF(bytes.Repeat([]byte{1}, SessionKeySize))
	tok := c.Token("ses_a")
	if tok == "" || !c.Verify("ses_a", tok) {
		t.Fatalf("token %q does not verify for its session", tok)
	}
	other := NewCSRF(bytes.Repeat([]byte{2}, SessionKeySize))
	for name, ok := range map[string]bool{
		"other session":    c.Verify("ses_b", tok),
		"other key":        other.Verify("ses_a", tok),
		"empty token":      c.Verify("ses_a", ""),
		"empty session":    c.Verify("", c.Token("")),
		"truncated":        c.Verify("ses_a", tok[:len(tok)-2]),
		"not base64":       c.Verify("ses_a", "!!"+tok),
		"derived for else": c.Verify("ses_a", string(DeriveKey(bytes.Repeat([]byte{1}, SessionKeySize), "csrf"))),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
	// Keys for different purposes differ.
	k := bytes.Repeat([]byte{1}, SessionKeySize)
	if bytes.Equal(DeriveKey(k, "csrf"), DeriveKey(k, "oauth-state")) {
		t.Error("derived keys are equal")
	}
}

func TestSessionSecrets(t *testing.T) {
	t.Parallel()
	s1, h1, err := NewSessionSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _ := NewSessionSecret()
	if !strings.HasPrefix(s1, SessionTokenPrefix) || len(s1) != len(SessionTokenPrefix)+43 || s1 == s2 || !bytes.Equal(h1, HashToken(s1)) {
		t.Fatalf("secrets %q %q", s1, s2)
	}
	ctx := WithSession(context.Background(), SessionInfo{ID: "ses_a", Cookie: true})
	if s, ok := SessionFrom(ctx); !ok || s.ID != "ses_a" || !s.Cookie {
		t.Fatalf("SessionFrom = %+v, %v", s, ok)
	}
	if _, ok := SessionFrom(context.Background()); ok {
		t.Fatal("a session in an empty context")
	}
}

package signup

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"

	"dev8.dev/dev8/internal/auth"
)

// InviteTokenPrefix starts every invite token, so one is recognisable in a
// link, a log or a secret scanner's findings, and never taken for an API
// token.
const InviteTokenPrefix = "dev8inv_"

// inviteTokenLength is the length of every invite token: the prefix and
// 32 random bytes in unpadded base64url.
var inviteTokenLength = len(InviteTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// NewInviteToken returns a fresh invite token and the hash to store for
// it. The token is shown once, in the invite's link.
func NewInviteToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate invite token: %w", err)
	}
	token = InviteTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, auth.HashToken(token), nil
}

// HashInviteToken is the hash an invite is stored and looked up by; ok is
// false for what cannot be an invite token (no lookup is needed).
func HashInviteToken(token string) (hash []byte, ok bool) {
	if len(token) != inviteTokenLength || !strings.HasPrefix(token, InviteTokenPrefix) {
		return nil, false
	}
	return auth.HashToken(token), true
}

// ParseDomains reads a comma-separated list of email domains
// (example.com): lower-cased, each a DNS name with a dot and without a
// wildcard (a subdomain is listed on its own). Empty is none.
func ParseDomains(s string) ([]string, error) {
	var out []string
	for _, d := range strings.Split(s, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			continue
		}
		if err := checkDomain(d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func checkDomain(d string) error {
	bad := func(why string) error { return fmt.Errorf("email domain %q: %s", d, why) }
	switch {
	case strings.ContainsAny(d, "@*"):
		return bad("name the domain alone, such as example.com (no @, no wildcard)")
	case len(d) > 253 || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, "."):
		return bad("want a domain such as example.com")
	case net.ParseIP(d) != nil:
		return bad("an IP address is not an email domain")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return bad("want a domain such as example.com")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad("letters, digits, dots and dashes only")
			}
		}
	}
	return nil
}

package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// SessionTokenPrefix starts every session secret (dev8s_…), so the server
// knows which table to look in and secret scanners can recognise one.
const SessionTokenPrefix = "dev8s_"

// SessionKeySize is the size of the installation's session key, from which
// the CSRF and OAuth state keys are derived.
const SessionKeySize = 32

// NewSessionSecret returns a fresh session secret and the hash to store for
// it (HashToken, as for API tokens).
func NewSessionSecret() (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate session secret: %w", err)
	}
	secret = SessionTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret), nil
}

// DeriveKey returns a key for one purpose from the installation's session
// key, so that a MAC made for one purpose is never valid for another.
func DeriveKey(sessionKey []byte, purpose string) []byte {
	h := hmac.New(sha256.New, sessionKey)
	h.Write([]byte("dev8 key v1\x00" + purpose))
	return h.Sum(nil)
}

// CSRF makes and checks synchronizer tokens: a token is an HMAC of a
// session's id, so it is valid for that session only, needs no storage, and
// cannot be made by anyone who does not know the installation's key (a
// cookie an attacker plants does not help them).
type CSRF struct{ key []byte }

// NewCSRF returns CSRF tokens under the session key.
func NewCSRF(sessionKey []byte) *CSRF { return &CSRF{key: DeriveKey(sessionKey, "csrf")} }

// Token returns the CSRF token for a session.
func (c *CSRF) Token(sessionID string) string {
	return base64.RawURLEncoding.EncodeToString(c.mac(sessionID))
}

// Verify reports whether token is the session's CSRF token.
func (c *CSRF) Verify(sessionID, token string) bool {
	mac, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil && sessionID != "" && hmac.Equal(mac, c.mac(sessionID))
}

func (c *CSRF) mac(sessionID string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte("dev8 csrf v1\x00" + sessionID))
	return h.Sum(nil)
}

// SessionInfo is how a request authenticated with a session.
type SessionInfo struct {
	ID string
	// Cookie is set when the secret came in the session cookie rather than
	// an Authorization header.
	Cookie bool
}

type sessionKey struct{}

// WithSession returns ctx carrying the session the request authenticated
// with.
func WithSession(ctx context.Context, s SessionInfo) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session the request authenticated with, if it did
// with one (rather than an API token or agent token).
func SessionFrom(ctx context.Context) (SessionInfo, bool) {
	s, ok := ctx.Value(sessionKey{}).(SessionInfo)
	return s, ok
}

type apiTokenKey struct{}

// WithAPIToken returns ctx carrying the id of the API token the request
// authenticated with.
func WithAPIToken(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, apiTokenKey{}, id)
}

// APITokenFrom returns the id of the API token the request authenticated
// with, if it did with one.
func APITokenFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(apiTokenKey{}).(string)
	return id, ok
}

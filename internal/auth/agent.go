package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"dev8.dev/dev8/internal/store"
)

// AgentTokenPrefix starts every agent token:
// dev8a_<environment id>.<nonce>.<mac>.
const AgentTokenPrefix = "dev8a_"

// AgentKeySize is the size of the installation's agent token key.
const AgentKeySize = 32

// AgentTokens issues and checks the tokens a workspace's supervisor uses to
// reach the server. A token names its environment and the nonce of the
// environment's current run, under an HMAC with the installation's key: it
// is valid only while its environment exists and still has that nonce,
// which every start replaces and every stop clears (see the lifecycle). So
// a token taken from a workspace dies when the workspace stops or starts
// again, and a copy of the database alone (which holds the nonces but only
// a sealed key) can neither make a token nor check one.
//
// Tokens made before nonces existed (dev8a_<environment id>.<mac>) are
// accepted for an environment whose nonce is store.LegacyAgentToken, so a
// workspace running across the upgrade keeps working until its next stop.
type AgentTokens struct{ key []byte }

// NewAgentTokens returns AgentTokens under key.
func NewAgentTokens(key []byte) *AgentTokens { return &AgentTokens{key: key} }

// NewAgentNonce returns a fresh nonce for an environment's next run.
func NewAgentNonce() string {
	b := make([]byte, 16)
	// crypto/rand.Read never fails (it panics if the OS source does).
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewNonce is NewAgentNonce (lifecycle.AgentTokenIssuer).
func (a *AgentTokens) NewNonce() string { return NewAgentNonce() }

// Issue returns the token for environmentID's run with nonce.
func (a *AgentTokens) Issue(environmentID, nonce string) string {
	return AgentTokenPrefix + environmentID + "." + nonce + "." + base64.RawURLEncoding.EncodeToString(a.mac(environmentID, nonce))
}

// AgentTokenEnvironment returns the environment a token names, without
// checking anything else: the caller loads it and asks Verify.
func AgentTokenEnvironment(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, AgentTokenPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ".")
	return id, ok && id != ""
}

// Verify reports whether token is genuine and is the token of env's
// current run: env must exist and hold the nonce the token was issued
// with.
func (a *AgentTokens) Verify(token string, env store.Environment) bool {
	rest, ok := strings.CutPrefix(token, AgentTokenPrefix)
	if !ok || env.AgentTokenNonce == "" {
		return false
	}
	parts := strings.Split(rest, ".")
	if parts[0] != env.ID {
		return false
	}
	var want []byte
	switch {
	case len(parts) == 3 && env.AgentTokenNonce != store.LegacyAgentToken:
		if subtle.ConstantTimeCompare([]byte(parts[1]), []byte(env.AgentTokenNonce)) != 1 {
			return false
		}
		want = a.mac(env.ID, env.AgentTokenNonce)
	case len(parts) == 2 && env.AgentTokenNonce == store.LegacyAgentToken:
		want = a.legacyMAC(env.ID)
	default:
		return false
	}
	// Strict: a MAC has one spelling (the loose decoder ignores the last
	// character's spare bits, so four spellings of it would pass).
	mac, err := base64.RawURLEncoding.Strict().DecodeString(parts[len(parts)-1])
	return err == nil && hmac.Equal(mac, want)
}

func (a *AgentTokens) mac(environmentID, nonce string) []byte {
	h := hmac.New(sha256.New, a.key)
	h.Write([]byte("dev8 agent token v2\x00" + environmentID + "\x00" + nonce))
	return h.Sum(nil)
}

// legacyMAC is the MAC of a token made before nonces existed.
func (a *AgentTokens) legacyMAC(environmentID string) []byte {
	h := hmac.New(sha256.New, a.key)
	h.Write([]byte("dev8 agent token v1\x00" + environmentID))
	return h.Sum(nil)
}

type agentKey struct{}

// WithAgent returns ctx carrying an authenticated supervisor's environment.
func WithAgent(ctx context.Context, environmentID string) context.Context {
	return context.WithValue(ctx, agentKey{}, environmentID)
}

// AgentFrom returns the environment of the authenticated supervisor, if the
// caller is one.
func AgentFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(agentKey{}).(string)
	return id, ok
}

package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// AgentTokenPrefix starts every agent token: dev8a_<environment id>.<mac>.
const AgentTokenPrefix = "dev8a_"

// AgentKeySize is the size of the installation's agent token key.
const AgentKeySize = 32

// AgentTokens issues and checks the tokens a workspace's supervisor uses to
// reach the server. A token is an HMAC of its environment id under the
// installation's key: it names the one environment it may act for, needs no
// storage, can be issued again after any crash, and dies with its
// environment (every use is checked against a live environment).
type AgentTokens struct{ key []byte }

// NewAgentTokens returns AgentTokens under key.
func NewAgentTokens(key []byte) *AgentTokens { return &AgentTokens{key: key} }

// Issue returns the token for environmentID.
func (a *AgentTokens) Issue(environmentID string) string {
	return AgentTokenPrefix + environmentID + "." + base64.RawURLEncoding.EncodeToString(a.mac(environmentID))
}

// Verify returns the environment a token was issued for, if it is genuine.
func (a *AgentTokens) Verify(token string) (environmentID string, ok bool) {
	rest, found := strings.CutPrefix(token, AgentTokenPrefix)
	if !found {
		return "", false
	}
	id, sig, found := strings.Cut(rest, ".")
	if !found || id == "" {
		return "", false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, a.mac(id)) {
		return "", false
	}
	return id, true
}

func (a *AgentTokens) mac(environmentID string) []byte {
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

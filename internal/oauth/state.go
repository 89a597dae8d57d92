package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// State is what a sign-in carries from its start to the provider's
// callback (in a cookie): the state parameter, the PKCE verifier, where
// to go afterwards and the invite, if the person signs up with one.
type State struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Verifier string `json:"v"`
	Next     string `json:"n"`
	Expires  int64  `json:"e"` // Unix seconds
	Invite   string `json:"i,omitempty"`
}

// StateSigner seals a State so that a browser can carry it but not alter
// it: an HMAC-SHA256 under a key of the installation's.
type StateSigner struct {
	key []byte
	now func() time.Time
}

// NewStateSigner signs with key; now is the clock expiry is checked with.
func NewStateSigner(key []byte, now func() time.Time) *StateSigner {
	return &StateSigner{key: key, now: now}
}

// Sign returns st as a cookie value.
func (s *StateSigner) Sign(st State) string {
	payload, _ := json.Marshal(st)
	enc := base64.RawURLEncoding.EncodeToString(payload)
	return enc + "." + base64.RawURLEncoding.EncodeToString(s.mac(enc))
}

// Open returns the state a cookie value holds if it is genuine and not
// expired.
func (s *StateSigner) Open(v string) (State, bool) {
	enc, sig, ok := strings.Cut(v, ".")
	if !ok {
		return State{}, false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.mac(enc)) {
		return State{}, false
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return State{}, false
	}
	var st State
	if err := json.Unmarshal(payload, &st); err != nil || s.now().Unix() >= st.Expires {
		return State{}, false
	}
	return st, true
}

func (s *StateSigner) mac(enc string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("dev8 oauth state v1\x00" + enc))
	return h.Sum(nil)
}

// NewStateParam returns a fresh, unguessable state parameter.
func NewStateParam() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

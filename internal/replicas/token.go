package replicas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// A relay credential lets one replica open a relay to one environment's
// supervisor at one other replica, for a short while: the HMAC-SHA256,
// under a key every replica of the installation shares (kept in the store
// sealed with the secret key), of the target replica's id, the
// environment's id and the expiry. It is
//
//	<expiry, unix seconds>.<MAC, unpadded base64url>
//
// A credential taken off the wire opens nothing else: not another
// environment, not another replica, not after it expires.

// tokenTTL is how long a relay credential is good for: one dial, with room
// for clocks a few seconds apart.
const tokenTTL = 30 * time.Second

// maxTokenTTL bounds the expiry a credential may claim: one further out
// was not made by a replica (or by one whose clock is far off).
const maxTokenTTL = 2 * time.Minute

// minKeySize is the shortest key a credential is made with.
const minKeySize = 32

// errBadToken is every refusal of a credential: which check failed is not
// told.
var errBadToken = errors.New("replicas: invalid relay credential")

type tokens struct{ key []byte }

func (k tokens) mac(replicaID, environmentID, expiry string) []byte {
	h := hmac.New(sha256.New, k.key)
	h.Write([]byte("dev8 replica relay v1\x00" + replicaID + "\x00" + environmentID + "\x00" + expiry))
	return h.Sum(nil)
}

// issue returns a credential for a relay to environmentID at replica
// replicaID, good until exp.
func (k tokens) issue(replicaID, environmentID string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + base64.RawURLEncoding.EncodeToString(k.mac(replicaID, environmentID, e))
}

// verify checks that token is a credential for a relay to environmentID at
// replica replicaID (this one) that has not expired at now. The MAC is
// compared in constant time; its encoding must be the one spelling.
func (k tokens) verify(token, replicaID, environmentID string, now time.Time) error {
	e, m, ok := strings.Cut(token, ".")
	if !ok {
		return errBadToken
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	// The expiry has one spelling too: no sign, no leading zeros.
	if err != nil || strconv.FormatInt(exp, 10) != e {
		return errBadToken
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(m)
	if err != nil || !hmac.Equal(mac, k.mac(replicaID, environmentID, e)) {
		return errBadToken
	}
	if at := time.Unix(exp, 0); !now.Before(at) || at.Sub(now) > maxTokenTTL {
		return errBadToken
	}
	return nil
}

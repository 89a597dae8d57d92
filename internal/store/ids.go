package store

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// idLen is the number of random characters after an ID's prefix: 20 base32
// characters carry 100 bits, enough that collisions never happen in practice
// and IDs cannot be guessed.
const idLen = 20

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix followed by idLen random lower-case base32 characters,
// e.g. "env_" + "k3x...". The prefix tells a reader what kind of object an
// ID names.
func newID(prefix string) string {
	var b [13]byte // 104 bits, encodes to 21 characters; the last is dropped
	// crypto/rand.Read never returns an error (it panics if the OS source
	// fails), so there is nothing to handle.
	rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))[:idLen]
}

package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ID is the SHA-256 of a blob's plain (uncompressed) contents. It names
// chunks and trees in a [Store].
type ID [sha256.Size]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// String is the ID in lower-case hex, the form used in file names and JSON.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 12 hex digits, for messages.
func (id ID) Short() string { return id.String()[:12] }

// IsZero reports whether id is the zero ID (no blob).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("snapshot: invalid id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("snapshot: invalid id %q: %w", s, err)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

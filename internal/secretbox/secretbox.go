// Package secretbox encrypts users' secrets at rest with AES-256-GCM.
//
// A ciphertext is
//
//	version (1 byte, 1) | key id (4 bytes) | nonce (12 bytes, random) | sealed data and tag
//
// The key id is the first four bytes of SHA-256 over the key, so a Box that
// holds the current key and retired ones (for rotation) opens what any of
// them sealed, and a ciphertext sealed under a key the Box lacks fails with
// ErrUnknownKey rather than as tampering. The version and key id are
// authenticated together with the caller's additional data, which binds a
// ciphertext to the row it belongs to (see AAD): moving it to another row
// makes Open fail.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

const (
	version1   = 1
	keyIDSize  = 4
	nonceSize  = 12
	headerSize = 1 + keyIDSize + nonceSize
)

var (
	// ErrDecrypt is returned by Open when a ciphertext was tampered with,
	// is truncated, or belongs to other additional data (another row).
	ErrDecrypt = errors.New("secretbox: message authentication failed")
	// ErrUnknownKey is returned by Open for a ciphertext sealed under a key
	// this Box does not hold.
	ErrUnknownKey = errors.New("secretbox: sealed with a key this server does not have")
)

type key struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// Box seals with its primary key and opens with any of its keys. It is safe
// for concurrent use.
type Box struct {
	primary key
	keys    []key
}

// New returns a Box sealing with primary; retired keys are only used to
// open. Every key must be KeySize bytes.
func New(primary []byte, retired ...[]byte) (*Box, error) {
	p, err := newKey(primary)
	if err != nil {
		return nil, err
	}
	b := &Box{primary: p, keys: []key{p}}
	for _, r := range retired {
		k, err := newKey(r)
		if err != nil {
			return nil, err
		}
		b.keys = append(b.keys, k)
	}
	return b, nil
}

func newKey(raw []byte) (key, error) {
	if len(raw) != KeySize {
		return key{}, fmt.Errorf("secretbox: key is %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, fmt.Errorf("secretbox: %w", err)
	}
	sum := sha256.Sum256(raw)
	k := key{aead: aead}
	copy(k.id[:], sum[:keyIDSize])
	return k, nil
}

// KeyID is the primary key's id in hex: safe to log, it tells which key a
// server runs with without revealing it.
func (b *Box) KeyID() string { return hex.EncodeToString(b.primary.id[:]) }

// Seal encrypts plaintext bound to aad (see AAD) under a fresh random nonce.
func (b *Box) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+b.primary.aead.Overhead())
	out[0] = version1
	copy(out[1:], b.primary.id[:])
	// crypto/rand.Read never fails (it panics if the OS source does).
	rand.Read(out[1+keyIDSize : headerSize])
	return b.primary.aead.Seal(out, out[1+keyIDSize:headerSize], plaintext, fullAAD(out[:1+keyIDSize], aad))
}

// Open decrypts a ciphertext from Seal with the same aad.
func (b *Box) Open(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < headerSize {
		return nil, ErrDecrypt
	}
	if ciphertext[0] != version1 {
		return nil, fmt.Errorf("secretbox: unknown ciphertext version %d", ciphertext[0])
	}
	id := ciphertext[1 : 1+keyIDSize]
	for _, k := range b.keys {
		if !bytes.Equal(k.id[:], id) {
			continue
		}
		pt, err := k.aead.Open(nil, ciphertext[1+keyIDSize:headerSize], ciphertext[headerSize:], fullAAD(ciphertext[:1+keyIDSize], aad))
		if err != nil {
			return nil, ErrDecrypt
		}
		return pt, nil
	}
	return nil, ErrUnknownKey
}

// fullAAD authenticates the header with the caller's data.
func fullAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}

// AAD builds additional data from parts (a purpose, then the ids of the row),
// each prefixed with its length so that no two lists of parts encode alike.
func AAD(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// ParseKey decodes a key given as 64 hex digits or as base64 (standard or
// URL alphabet, padded or not) of KeySize bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("the key is %d bytes, want %d (generate one with: openssl rand -base64 32)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("the key is neither 64 hex digits nor base64 of 32 bytes (generate one with: openssl rand -base64 32)")
}

// LoadKeyFile reads the key file at path, creating it with a new random key
// (mode 0600, base64) when it does not exist. It refuses a file that anyone
// but its owner may read or write, and one that does not hold a key.
// created reports whether the file was made now.
func LoadKeyFile(path string) (k []byte, created bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := createKeyFile(path)
		if err == nil {
			return k, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		// Another process created it first: read theirs.
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("secret key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("secret key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("secret key file %s has mode %04o: only its owner may read it (chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("secret key file: %w", err)
	}
	k, err = ParseKey(string(data))
	if err != nil {
		return nil, false, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, false, nil
}

func createKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	k := make([]byte, KeySize)
	rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("secret key file: write %s: %w", path, err)
	}
	return k, nil
}

// Source says where Load found the key, for the start-up log.
type Source string

const (
	SourceEnv         Source = "env"
	SourceFile        Source = "file"
	SourceFileCreated Source = "file-created"
)

// Load returns a Box keyed by encoded (the value of DEV8_SECRET_KEY) when it
// is not empty, else by the key file at keyFile (created on first use).
func Load(encoded, keyFile string) (*Box, Source, error) {
	if strings.TrimSpace(encoded) != "" {
		k, err := ParseKey(encoded)
		if err != nil {
			return nil, "", fmt.Errorf("DEV8_SECRET_KEY: %w", err)
		}
		b, err := New(k)
		return b, SourceEnv, err
	}
	if keyFile == "" {
		return nil, "", errors.New("secretbox: neither DEV8_SECRET_KEY nor a key file was given")
	}
	k, created, err := LoadKeyFile(keyFile)
	if err != nil {
		return nil, "", err
	}
	b, err := New(k)
	if created {
		return b, SourceFileCreated, err
	}
	return b, SourceFile, err
}

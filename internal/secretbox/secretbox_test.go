package secretbox

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func mustBox(t *testing.T, primary []byte, retired ...[]byte) *Box {
	t.Helper()
	b, err := New(primary, retired...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	box := mustBox(t, testKey(1))
	aad := AAD("user-secret", "usr_1", "NPM_TOKEN")
	secret := []byte("hunter2-very-secret")
	ct := box.Seal(secret, aad)
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if ct[0] != version1 || hex.EncodeToString(ct[1:5]) != box.KeyID() {
		t.Fatalf("header %x, want version 1 and key id %s", ct[:5], box.KeyID())
	}
	got, err := box.Open(ct, aad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Fresh nonces: the same plaintext never seals alike.
	if again := box.Seal(secret, aad); bytes.Equal(again, ct) {
		t.Fatal("two seals of one plaintext are equal")
	}
	// An empty secret round-trips too.
	if got, err := box.Open(box.Seal(nil, aad), aad); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	box := mustBox(t, testKey(1))
	aad := AAD("user-secret", "usr_1", "NPM_TOKEN")
	ct := box.Seal([]byte("value"), aad)

	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	cases := []struct {
		name string
		ct   []byte
		aad  []byte
		want error
	}{
		{"tampered body", flip(len(ct) - 1), aad, ErrDecrypt},
		{"tampered nonce", flip(6), aad, ErrDecrypt},
		{"truncated", ct[:headerSize-1], aad, ErrDecrypt},
		{"tag cut off", ct[:len(ct)-4], aad, ErrDecrypt},
		{"other user", ct, AAD("user-secret", "usr_2", "NPM_TOKEN"), ErrDecrypt},
		{"other name", ct, AAD("user-secret", "usr_1", "OTHER"), ErrDecrypt},
		{"other purpose", ct, AAD("github-token", "usr_1"), ErrDecrypt},
		{"no aad", ct, nil, ErrDecrypt},
		{"tampered key id", flip(1), aad, ErrUnknownKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := box.Open(tc.ct, tc.aad)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Open = %q, %v; want %v", got, err, tc.want)
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		t.Parallel()
		c := bytes.Clone(ct)
		c[0] = 2
		if _, err := box.Open(c, aad); err == nil || !strings.Contains(err.Error(), "version 2") {
			t.Fatalf("Open = %v, want an unknown version error", err)
		}
	})
}

func TestAADIsUnambiguous(t *testing.T) {
	t.Parallel()
	if bytes.Equal(AAD("a", "bc"), AAD("ab", "c")) || bytes.Equal(AAD("a", ""), AAD("a")) {
		t.Fatal("different parts encode alike")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	old := mustBox(t, testKey(1))
	aad := AAD("x")
	ct := old.Seal([]byte("v"), aad)

	rotated := mustBox(t, testKey(2), testKey(1))
	if got, err := rotated.Open(ct, aad); err != nil || string(got) != "v" {
		t.Fatalf("retired key: %q, %v", got, err)
	}
	fresh := rotated.Seal([]byte("v"), aad)
	if _, err := old.Open(fresh, aad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old box on new ciphertext: %v, want ErrUnknownKey", err)
	}
	if _, err := New(testKey(1), []byte("short")); err == nil {
		t.Fatal("a short retired key was accepted")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	k := testKey(7)
	for _, s := range []string{
		hex.EncodeToString(k),
		base64.StdEncoding.EncodeToString(k),
		base64.RawURLEncoding.EncodeToString(k),
		" " + base64.StdEncoding.EncodeToString(k) + "\n",
	} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "not a key", base64.StdEncoding.EncodeToString(k[:16]), hex.EncodeToString(k[:31])} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")

	box1, src, err := Load("", path)
	if err != nil || src != SourceFileCreated {
		t.Fatalf("first Load: %v, %v", src, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	box2, src, err := Load("", path)
	if err != nil || src != SourceFile || box2.KeyID() != box1.KeyID() {
		t.Fatalf("second Load: %v, %v (key %s vs %s)", src, err, box2.KeyID(), box1.KeyID())
	}
	ct := box1.Seal([]byte("v"), nil)
	if _, err := box2.Open(ct, nil); err != nil {
		t.Fatalf("reloaded key cannot open: %v", err)
	}

	// The environment wins over the file.
	envKey := base64.StdEncoding.EncodeToString(testKey(9))
	box3, src, err := Load(envKey, path)
	if err != nil || src != SourceEnv || box3.KeyID() == box1.KeyID() {
		t.Fatalf("Load with env: %v, %v", src, err)
	}
	if _, _, err := Load("zzz", path); err == nil || !strings.Contains(err.Error(), "DEV8_SECRET_KEY") {
		t.Fatalf("bad env key: %v", err)
	}

	// Too open: refused, with the fix in the message.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load("", path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key file: %v", err)
	}

	// Wrong length.
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString(testKey(1)[:16])), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load("", short); err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Fatalf("short key file: %v", err)
	}

	// Not a regular file.
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load("", link); err == nil {
		t.Fatal("a symlinked key file was accepted")
	}
}

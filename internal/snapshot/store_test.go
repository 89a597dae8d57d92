package snapshot

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

func TestBlobEncoding(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		plain  []byte
		format byte
	}{
		{"text is compressed", textBytes(rng, 100<<10), blobZstd},
		{"random is stored raw", randomBytes(rng, 100<<10), blobRaw},
		{"empty", nil, blobRaw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := Hash(tc.plain)
			enc := encodeBlob(tc.plain)
			if enc[0] != tc.format {
				t.Fatalf("format %d, want %d", enc[0], tc.format)
			}
			got, err := decodeBlob(id, enc)
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Fatalf("round trip: %v", err)
			}
			if len(enc) > 1 {
				// Every single flipped byte is detected.
				for _, i := range []int{1, len(enc) / 2, len(enc) - 1} {
					bad := slices.Clone(enc)
					bad[i] ^= 0x40
					if _, err := decodeBlob(id, bad); !errors.Is(err, ErrCorrupt) {
						t.Errorf("flipped byte %d of %d: %v, want ErrCorrupt", i, len(enc), err)
					}
				}
			}
			if _, err := decodeBlob(Hash([]byte("other")), enc); !errors.Is(err, ErrCorrupt) {
				t.Errorf("wrong id: %v", err)
			}
			if _, err := decodeBlob(id, []byte{7, 1, 2}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("unknown format: %v", err)
			}
		})
	}
}

func TestDirStore(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st, err := OpenDirStore(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	id := Hash([]byte("blob a"))
	if err := st.Put(ctx, id, []byte("blob a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(st.Root(), "data", id.String()[:2], id.String())); err != nil {
		t.Errorf("not sharded by hash prefix: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(st.Root(), "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not empty: %v", left)
	}
	old := time.Now().Add(-3 * time.Hour)

	// Temporary files left by a crash are removed once old.
	stale := filepath.Join(st.Root(), "tmp", "put-1")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := st.RemoveTemp(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("RemoveTemp removed a young file: %d %v", n, err)
	}
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if n, err := st.RemoveTemp(ctx, time.Now().Add(-time.Hour)); n != 1 || err != nil {
		t.Fatalf("RemoveTemp = %d %v", n, err)
	}
}

func TestOpenKeepsConfig(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	dir := filepath.Join(t.TempDir(), "r")
	st, err := OpenDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := OpenDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, st2)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Config().Polynomial != r2.Config().Polynomial || r1.Config().Polynomial == 0 {
		t.Fatalf("polynomial changed on reopen: %v vs %v", r1.Config().Polynomial, r2.Config().Polynomial)
	}
	other, err := Open(ctx, mustDirStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if other.Config().Polynomial == r1.Config().Polynomial {
		t.Error("two repositories got the same random polynomial")
	}
	if err := st.PutRecord(ctx, KindConfig, "config", []byte(`{"version":99}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, st); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("a newer repository version was accepted: %v", err)
	}
}

func mustDirStore(t *testing.T) *DirStore {
	t.Helper()
	st, err := OpenDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

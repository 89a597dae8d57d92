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
	ctx := testContext(t)
	st, err := OpenDirStore(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := []byte("blob a"), []byte("blob b")
	ida, idb := Hash(a), Hash(b)
	if ok, err := st.Has(ctx, ida); ok || err != nil {
		t.Fatalf("Has before Put: %v %v", ok, err)
	}
	if _, err := st.Get(ctx, ida); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Put: %v", err)
	}
	for range 2 { // idempotent
		if err := st.Put(ctx, ida, a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Get(ctx, ida)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("Get: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(st.Root(), "data", ida.String()[:2], ida.String())); err != nil {
		t.Errorf("not sharded by hash prefix: %v", err)
	}

	// Missing reports absent blobs and refreshes present ones.
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(st.blobPath(ida), old, old); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	missing, err := st.Missing(ctx, []ID{idb, ida})
	if err != nil || !slices.Equal(missing, []ID{idb}) {
		t.Fatalf("Missing = %v, %v; want [b]", missing, err)
	}
	var infos []BlobInfo
	if err := st.List(ctx, func(bi BlobInfo) error { infos = append(infos, bi); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].ID != ida || infos[0].Size != int64(len(a)) || infos[0].Touched.Before(before) {
		t.Fatalf("List = %+v", infos)
	}

	// Delete is conditional on the last touch.
	if deleted, err := st.Delete(ctx, ida, old); deleted || err != nil {
		t.Fatalf("Delete of a refreshed blob: %v %v", deleted, err)
	}
	if ok, _ := st.Has(ctx, ida); !ok {
		t.Fatal("a refreshed blob was deleted")
	}
	if deleted, err := st.Delete(ctx, ida, time.Now().Add(time.Second)); !deleted || err != nil {
		t.Fatalf("Delete: %v %v", deleted, err)
	}
	if ok, _ := st.Has(ctx, ida); ok {
		t.Fatal("deleted blob still there")
	}
	if deleted, err := st.Delete(ctx, ida, time.Time{}); deleted || err != nil {
		t.Fatalf("Delete of an absent blob: %v %v", deleted, err)
	}
	if left, _ := os.ReadDir(filepath.Join(st.Root(), "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not empty: %v", left)
	}

	// Records.
	if err := st.PutRecord(ctx, KindSnapshot, "s2", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(ctx, KindSnapshot, "s1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(ctx, KindSnapshot, "s1", []byte("one!")); err != nil {
		t.Fatal(err)
	}
	names, err := st.ListRecords(ctx, KindSnapshot)
	if err != nil || !slices.Equal(names, []string{"s1", "s2"}) {
		t.Fatalf("ListRecords = %v %v", names, err)
	}
	if r, err := st.GetRecord(ctx, KindSnapshot, "s1"); err != nil || string(r) != "one!" {
		t.Fatalf("GetRecord = %q %v", r, err)
	}
	if err := st.DeleteRecord(ctx, KindSnapshot, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRecord(ctx, KindSnapshot, "s1"); err != nil {
		t.Fatalf("deleting an absent record: %v", err)
	}
	if _, err := st.GetRecord(ctx, KindSnapshot, "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRecord after delete: %v", err)
	}
	for _, bad := range []struct{ kind, name string }{
		{KindSnapshot, "../config"}, {KindSnapshot, ""}, {KindSnapshot, ".hidden"}, {"data", "x"}, {KindLock, "a/b"},
	} {
		if err := st.PutRecord(ctx, bad.kind, bad.name, nil); err == nil || !strings.Contains(err.Error(), "invalid") && !strings.Contains(err.Error(), "unknown") {
			t.Errorf("PutRecord(%q, %q) = %v, want a refusal", bad.kind, bad.name, err)
		}
	}

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
	ctx := testContext(t)
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

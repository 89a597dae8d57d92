package snapshot_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/snapshot/storetest"
)

func TestDirStoreContract(t *testing.T) {
	t.Parallel()
	st, err := snapshot.OpenDirStore(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, st, func(t *testing.T, id snapshot.ID, when time.Time) {
		h := id.String()
		if err := os.Chtimes(filepath.Join(st.Root(), "data", h[:2], h), when, when); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDirStoreRoundTrip drives the snapshot engine on a directory store as
// the object-store tests do on theirs.
func TestDirStoreRoundTrip(t *testing.T) {
	t.Parallel()
	st, err := snapshot.OpenDirStore(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.RoundTrip(t, st)
}

// TestConcurrentSnapshotAndPrune: see storetest.ConcurrentSnapshotAndPrune.
// The blobs are made two hours old by their files' times (backdate).
func TestConcurrentSnapshotAndPrune(t *testing.T) {
	t.Parallel()
	st, err := snapshot.OpenDirStore(filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.ConcurrentSnapshotAndPrune(t, st, storetest.PruneRace{Files: 300, Variants: 30, Large: 1 << 20, Rounds: 8,
		Backdate: func(t *testing.T) { snapshot.Backdate(t, st, 2) }})
}

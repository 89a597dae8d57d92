package storetest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/snapshot"
)

// PruneRace shapes ConcurrentSnapshotAndPrune's workspace and run.
type PruneRace struct {
	Files    int // files that never change
	Variants int // files the rounds rewrite, alternating between two contents
	Large    int // bytes of one large file (several chunks), 0 for none
	Rounds   int // snapshots taken while prune runs
	// Backdate makes every stored blob old enough for prune to delete
	// once unreferenced. Nil waits for the clock instead (object stores
	// keep their own times, to the second).
	Backdate func(t *testing.T)
}

// ConcurrentSnapshotAndPrune runs snapshots that keep reusing blobs that
// prune has just found unreferenced (the rounds alternate between two
// variants of some files, and the latest snapshot always has the other),
// while prune deletes as eagerly as it may (keep the last, MinGrace). Some
// prune must delete something, and afterwards the repository verifies and
// every surviving snapshot restores to the tree it was taken of. st must be
// empty.
func ConcurrentSnapshotAndPrune(t *testing.T, st snapshot.Store, r PruneRace) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo, err := snapshot.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	for i := range r.Files {
		WriteFile(t, filepath.Join(src, fmt.Sprintf("d%d", i%6), fmt.Sprintf("f%03d.txt", i)), fmt.Appendf(nil, "stable file %d %0400d\n", i, i), 0o644)
	}
	if r.Large > 0 {
		big := make([]byte, r.Large)
		for i := range big {
			big[i] = byte(i*7 + i/4096)
		}
		WriteFile(t, filepath.Join(src, "big", "large.bin"), big, 0o600)
	}
	variant := func(v int) {
		for j := range r.Variants {
			WriteFile(t, filepath.Join(src, fmt.Sprintf("d%d", j%6), fmt.Sprintf("v%03d.txt", j)), fmt.Appendf(nil, "variant %d of file %d %0500d\n", v, j, j), 0o644)
		}
	}
	for v := range 2 {
		variant(v)
		if _, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	if r.Backdate != nil {
		r.Backdate(t)
	} else {
		WaitForClock(t, time.Now().Add(2*time.Second))
	}

	wants := map[string]map[string]Entry{}
	var wg sync.WaitGroup
	var snapErr, pruneErr error
	pctx, stopPruning := context.WithCancel(ctx)
	defer stopPruning()
	wg.Go(func() {
		defer stopPruning() // the snapshots are done
		for i := range r.Rounds {
			variant(i % 2)
			WriteFile(t, filepath.Join(src, "round.txt"), fmt.Appendf(nil, "round %d", i), 0o644)
			s, err := repo.Snapshot(ctx, src, snapshot.Options{Source: "w", NoParent: i%3 == 0})
			if err != nil {
				snapErr = err
				return
			}
			wants[s.ID] = ReadTree(t, src)
		}
	})
	prunes, deleted := 0, 0
	wg.Go(func() {
		for pctx.Err() == nil {
			rep, err := repo.Prune(ctx, snapshot.PruneOptions{Retention: snapshot.Retention{KeepLast: 1}, Grace: snapshot.MinGrace})
			if err != nil {
				pruneErr = err
				return
			}
			prunes++
			deleted += rep.BlobsDeleted
		}
	})
	wg.Wait()
	if snapErr != nil || pruneErr != nil {
		t.Fatalf("snapshot: %v; prune: %v", snapErr, pruneErr)
	}
	t.Logf("%d prunes deleted %d blobs during %d snapshots", prunes, deleted, r.Rounds)
	if prunes == 0 || deleted == 0 {
		t.Fatal("no prune deleted anything during the snapshots")
	}
	left, err := repo.Snapshots(ctx)
	if err != nil || len(left) == 0 {
		t.Fatalf("snapshots left: %v %v", left, err)
	}
	if v, err := repo.Verify(ctx); err != nil || !v.OK() {
		t.Fatalf("verify: %+v %v", v, err)
	}
	for _, s := range left {
		if want, ok := wants[s.ID]; ok { // else one of the first two
			Restore(t, repo, s.ID, want)
		}
	}
}

// MissingInOrder stores two of every three of n blobs and checks that
// Missing, which asks about them concurrently, names the absent ones in the
// order given, and that Missing and Put give up on a cancelled context. It
// returns the stored blobs' sizes.
func MissingInOrder(t *testing.T, st snapshot.Store, n int) map[snapshot.ID]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids, want []snapshot.ID
	stored := map[snapshot.ID]int64{}
	for i := range n {
		data := fmt.Appendf(nil, "blob %d", i)
		id := snapshot.Hash(data)
		ids = append(ids, id)
		if i%3 == 0 {
			want = append(want, id)
			continue
		}
		if err := st.Put(ctx, id, data); err != nil {
			t.Fatal(err)
		}
		stored[id] = int64(len(data))
	}
	missing, err := st.Missing(ctx, ids)
	if err != nil || !slices.Equal(missing, want) {
		t.Fatalf("Missing = %d ids, %v; want the %d absent ones in order", len(missing), err, len(want))
	}

	cctx, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := st.Put(cctx, ids[0], []byte("blob 0")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
	if _, err := st.Missing(cctx, ids); !errors.Is(err, context.Canceled) {
		t.Errorf("Missing with a cancelled context: %v", err)
	}
	return stored
}

// DeleteThenMissing deletes a stored blob with a cutoff in the future and
// checks that a Missing that comes after reports it missing (so a writer
// uploads it again).
func DeleteThenMissing(t *testing.T, st snapshot.Store, id snapshot.ID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if deleted, err := st.Delete(ctx, id, time.Now().Add(time.Hour)); !deleted || err != nil {
		t.Fatalf("Delete = %v, %v", deleted, err)
	}
	if m, err := st.Missing(ctx, []snapshot.ID{id}); err != nil || !slices.Equal(m, []snapshot.ID{id}) {
		t.Fatalf("Missing after Delete = %v, %v", m, err)
	}
}

// WaitForClock blocks until the wall clock passes until. Nothing signals
// that a store's one-second timestamps have moved on, so this is the one
// wait that cannot be awaited on an event.
func WaitForClock(t testing.TB, until time.Time) {
	t.Helper()
	if d := time.Until(until); d > 0 {
		time.Sleep(d)
	}
}

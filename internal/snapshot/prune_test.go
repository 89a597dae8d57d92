package snapshot

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

func hoursAgo(h int) time.Time { return time.Now().Add(-time.Duration(h) * time.Hour) }

// backdate makes every stored blob look h hours old, as if written long ago.
func backdate(t testing.TB, st *DirStore, h int) {
	t.Helper()
	ts := hoursAgo(h)
	err := filepath.WalkDir(filepath.Join(st.Root(), "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, ts, ts)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRetain(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)
	mk := func(src string, ago time.Duration) Snapshot {
		tm := now.Add(-ago)
		return Snapshot{ID: tm.Format(time.RFC3339) + src, Time: tm, Source: src}
	}
	h := time.Hour
	d := 24 * h
	for _, tc := range []struct {
		name  string
		snaps []Snapshot
		ret   Retention
		keep  []int // indexes in snaps
	}{
		{"last N only", []Snapshot{mk("a", h), mk("a", 2*h), mk("a", 3*h), mk("a", 4*h)}, Retention{KeepLast: 2}, []int{0, 1}},
		{"newest per day", []Snapshot{mk("a", h), mk("a", 2*h), mk("a", 20*h), mk("a", d+h), mk("a", d+3*h), mk("a", 3*d)},
			Retention{KeepLast: 1, KeepDaily: 3}, []int{0, 2}},
		{"days beyond D go", []Snapshot{mk("a", 0), mk("a", 40*d), mk("a", 29*d)}, Retention{KeepLast: 1, KeepDaily: 30}, []int{0, 2}},
		{"per source", []Snapshot{mk("a", h), mk("a", 2*h), mk("b", 50*d), mk("b", 60*d)}, Retention{KeepLast: 1}, []int{0, 2}},
		{"defaults", func() []Snapshot {
			var s []Snapshot
			for i := range 24 * 40 { // hourly for 40 days
				s = append(s, mk("a", time.Duration(i)*h))
			}
			return s
		}(), DefaultRetention, append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, func() []int {
			// The newest of each of the 29 earlier days: 23:00 of
			// yesterday is 19 hours before now (18:00), then every 24h.
			var k []int
			for i := range 29 {
				k = append(k, 19+24*i)
			}
			return k
		}()...)},
		{"future counts as today", []Snapshot{mk("a", -h), mk("a", h)}, Retention{KeepLast: 1, KeepDaily: 1}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep, forget := Retain(tc.snaps, now, tc.ret)
			var want, got []string
			for _, i := range tc.keep {
				want = append(want, tc.snaps[i].ID)
			}
			for _, s := range keep {
				got = append(got, s.ID)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("kept %v\nwant %v", got, want)
			}
			if len(keep)+len(forget) != len(tc.snaps) {
				t.Errorf("kept %d + forgot %d != %d", len(keep), len(forget), len(tc.snaps))
			}
		})
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, treeSpec{files: 100}, 6)
	now := time.Now().UTC()
	var snaps []Snapshot
	uniq := map[string]ID{} // snapshot ID → a chunk only it uses
	wants := map[string]map[string]entry{}
	for i := range 6 {
		data := []byte(fmt.Sprintf("contents unique to snapshot %d\n", i))
		writeFile(t, filepath.Join(src, "unique.txt"), data, 0o644)
		// Around noon UTC of: 0: 3 days ago, 1: 2 days ago, 2: yesterday,
		// 3..5: today (maybe later than now, which counts as today).
		tm := day(now).Add(-time.Duration(max(0, 3-i))*24*time.Hour + 12*time.Hour + time.Duration(i)*time.Minute)
		s, err := repo.Snapshot(ctx, src, Options{Source: "env", Time: tm})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
		uniq[s.ID] = Hash(data)
		wants[s.ID] = readTree(t, src)
	}
	backdate(t, st, 2)
	young := []byte("written a moment ago by a snapshot still running")
	if err := st.Put(ctx, Hash(young), encodeBlob(young)); err != nil {
		t.Fatal(err)
	}

	ret := Retention{KeepLast: 2, KeepDaily: 3}
	keep, forget := Retain(snaps, time.Now(), ret)
	if len(keep) != 4 || len(forget) != 2 { // the last 2, and the newest of 3 days
		t.Fatalf("retention keeps %d, forgets %d", len(keep), len(forget))
	}

	dry, err := repo.Prune(ctx, PruneOptions{Retention: ret, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := repo.Snapshots(ctx); len(all) != 6 || dry.BlobsDeleted == 0 {
		t.Fatalf("dry run changed something or found nothing: %d snapshots, %+v", len(all), dry)
	}

	rep, err := repo.Prune(ctx, PruneOptions{Retention: ret})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v", rep)
	if rep.BlobsDeleted != dry.BlobsDeleted || rep.BytesDeleted != dry.BytesDeleted {
		t.Errorf("dry run said %d blobs / %d bytes, prune deleted %d / %d", dry.BlobsDeleted, dry.BytesDeleted, rep.BlobsDeleted, rep.BytesDeleted)
	}
	left, err := repo.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs, keepIDs []string
	for _, s := range left {
		leftIDs = append(leftIDs, s.ID)
	}
	for _, s := range keep {
		keepIDs = append(keepIDs, s.ID)
	}
	slices.Sort(keepIDs)
	if !slices.Equal(leftIDs, keepIDs) || !slices.Equal(rep.Kept, keepIDs) {
		t.Fatalf("left %v, want %v", leftIDs, keepIDs)
	}
	for _, s := range forget {
		if ok, _ := st.Has(ctx, uniq[s.ID]); ok {
			t.Errorf("the chunk only forgotten snapshot %s used survived", s.ID)
		}
	}
	if ok, _ := st.Has(ctx, Hash(young)); !ok {
		t.Error("a blob younger than the grace period was deleted")
	}
	if rep.BlobsYoung != 1 {
		t.Errorf("BlobsYoung = %d, want 1", rep.BlobsYoung)
	}
	// Every kept snapshot is intact.
	if v, err := repo.Verify(ctx); err != nil || !v.OK() || v.Snapshots != 4 {
		t.Fatalf("verify after prune: %+v %v", v, err)
	}
	for _, s := range keep {
		dst := filepath.Join(t.TempDir(), "r")
		if _, err := repo.Restore(ctx, s.ID, dst, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		sameTree(t, wants[s.ID], readTree(t, dst))
	}
	// Nothing more to do the second time.
	again, err := repo.Prune(ctx, PruneOptions{Retention: ret})
	if err != nil || again.BlobsDeleted != 0 || len(again.Forgotten) != 0 {
		t.Errorf("second prune: %+v %v", again, err)
	}
	if _, err := repo.Prune(ctx, PruneOptions{Retention: Retention{KeepLast: 0, KeepDaily: 5}}); err == nil {
		t.Error("prune accepted KeepLast 0")
	}
}

func TestPruneKeepsBlobsOfSnapshotInProgress(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	repo, st := newRepo(t)
	// A lock created 3 hours ago and still refreshed: its snapshot may
	// reference any blob written since then.
	l := fmt.Appendf(nil, `{"created":%q,"refreshed":%q,"pid":1}`,
		hoursAgo(3).UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano))
	if err := st.PutRecord(ctx, KindLock, "live", l); err != nil {
		t.Fatal(err)
	}
	data := []byte("uploaded 2 hours ago by the running snapshot")
	if err := st.Put(ctx, Hash(data), encodeBlob(data)); err != nil {
		t.Fatal(err)
	}
	old := []byte("an orphan from before the lock")
	if err := st.Put(ctx, Hash(old), encodeBlob(old)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(st.blobPath(Hash(data)), hoursAgo(2), hoursAgo(2)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(st.blobPath(Hash(old)), hoursAgo(5), hoursAgo(5)); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Prune(ctx, PruneOptions{Retention: DefaultRetention, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Has(ctx, Hash(data)); !ok {
		t.Error("prune deleted a blob written after the oldest live lock")
	}
	if ok, _ := st.Has(ctx, Hash(old)); ok {
		t.Error("prune kept an orphan older than every lock")
	}
	if rep.StaleLocks != 0 {
		t.Errorf("a live lock was removed: %+v", rep)
	}
}

package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestResourceUsage(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "usage@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "busy"})
		other := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "quiet"})
		base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

		// More rows than one INSERT batch holds, inserted newest first to
		// show the list orders by time, not by insertion.
		const n = 1234
		var rows []store.ResourceUsage
		for i := n - 1; i >= 0; i-- {
			rows = append(rows, store.ResourceUsage{
				EnvironmentID: e.ID, Timestamp: base.Add(time.Duration(i) * time.Minute).Add(789 * time.Nanosecond),
				CPUUsagePercent: float64(i) / 10, MemoryUsageMB: int64(i) * 1 << 20, DiskUsageMB: 5000 + int64(i),
				NetworkInMB: 1.5, NetworkOutMB: 2.25, CostAmount: 0.001, BillingPeriod: "2026-11",
			})
		}
		rows = append(rows, store.ResourceUsage{EnvironmentID: other.ID, Timestamp: base, BillingPeriod: "2026-11"})
		if err := db.InsertResourceUsage(ctx, rows); err != nil {
			t.Fatalf("InsertResourceUsage: %v", err)
		}
		if err := db.InsertResourceUsage(ctx, nil); err != nil {
			t.Fatalf("InsertResourceUsage(nil): %v", err)
		}

		all, err := db.ListResourceUsage(ctx, e.ID, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("listed %d samples, want %d", len(all), n)
		}
		first := all[0]
		if first.ID == 0 || first.EnvironmentID != e.ID || !first.Timestamp.Equal(base) || first.CPUUsagePercent != 0 ||
			first.DiskUsageMB != 5000 || first.NetworkInMB != 1.5 || first.NetworkOutMB != 2.25 || first.CostAmount != 0.001 ||
			first.BillingPeriod != "2026-11" || first.Timestamp.Location() != time.UTC {
			t.Errorf("first sample %+v", first)
		}
		if last := all[n-1]; last.MemoryUsageMB != int64(n-1)<<20 || !last.Timestamp.Equal(base.Add((n-1)*time.Minute)) {
			t.Errorf("last sample %+v", last)
		}
		if !slices.IsSortedFunc(all, func(a, b store.ResourceUsage) int { return a.Timestamp.Compare(b.Timestamp) }) {
			t.Error("samples not oldest first")
		}

		since := base.Add(1000 * time.Minute)
		page, err := db.ListResourceUsage(ctx, e.ID, since, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 10 || !page[0].Timestamp.Equal(since) || !page[9].Timestamp.Equal(since.Add(9*time.Minute)) {
			t.Errorf("since+limit page: %d rows, first %v", len(page), page[0].Timestamp)
		}

		deleted, err := db.DeleteResourceUsageBefore(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != 1000+1 { // 1000 of e's and the other environment's one
			t.Errorf("deleted %d, want 1001", deleted)
		}
		left, _ := db.ListResourceUsage(ctx, e.ID, time.Time{}, 0)
		if len(left) != n-1000 || !left[0].Timestamp.Equal(since) {
			t.Errorf("after retention %d rows left, first %v", len(left), left[0].Timestamp)
		}
		if none, _ := db.ListResourceUsage(ctx, other.ID, time.Time{}, 0); len(none) != 0 {
			t.Errorf("other environment still has %d rows", len(none))
		}

		if err := db.InsertResourceUsage(ctx, []store.ResourceUsage{{EnvironmentID: "env_missing"}}); err == nil {
			t.Error("usage for a missing environment was accepted")
		}
	})
}

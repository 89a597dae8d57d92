package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestLeases(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		acquire := func(name, holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := db.AcquireLease(ctx, name, holder, ttl)
			if err != nil {
				t.Fatalf("AcquireLease(%s, %s): %v", name, holder, err)
			}
			return ok
		}
		renew := func(name, holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := db.RenewLease(ctx, name, holder, ttl)
			if err != nil {
				t.Fatalf("RenewLease(%s, %s): %v", name, holder, err)
			}
			return ok
		}
		if !acquire("leader", "a", time.Hour) {
			t.Fatal("a free lease was not acquired")
		}
		if acquire("leader", "b", time.Hour) {
			t.Fatal("b took a lease a holds")
		}
		if !acquire("leader", "a", time.Hour) {
			t.Fatal("a could not acquire its own lease again")
		}
		if !renew("leader", "a", time.Hour) || renew("leader", "b", time.Hour) {
			t.Fatal("renewal: only the holder renews")
		}
		if h, exp, err := db.LeaseHolder(ctx, "leader"); err != nil || h != "a" || exp <= time.Now().Add(50*time.Minute).UnixMilli() {
			t.Fatalf("LeaseHolder = %s, %d, %v; want a, about an hour from now", h, exp, err)
		}
		// b's release of a's lease does nothing.
		if err := db.ReleaseLease(ctx, "leader", "b"); err != nil {
			t.Fatal(err)
		}
		if acquire("leader", "b", time.Hour) {
			t.Fatal("b took a's lease after releasing what it did not hold")
		}
		if err := db.ReleaseLease(ctx, "leader", "a"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.LeaseHolder(ctx, "leader"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("released lease: err = %v, want ErrNotFound", err)
		}
		if renew("leader", "a", time.Hour) {
			t.Fatal("a renewed a lease it had released")
		}
		if !acquire("leader", "b", time.Hour) {
			t.Fatal("b could not take a released lease")
		}

		// Expiry: a lease whose holder let it lapse is listed, and
		// another holder may take it; the old holder's renewal then fails.
		if !acquire("environment/env_1", "a", -time.Second) || !acquire("environment/env_2", "a", time.Hour) || !acquire("environmentX", "a", -time.Second) {
			t.Fatal("acquire environment leases")
		}
		expired, err := db.ExpiredLeases(ctx, "environment/")
		if err != nil || !slices.Equal(expired, []string{"environment/env_1"}) {
			t.Fatalf("ExpiredLeases = %v, %v; want [environment/env_1]", expired, err)
		}
		if !acquire("environment/env_1", "c", time.Hour) {
			t.Fatal("c could not take an expired lease")
		}
		if renew("environment/env_1", "a", time.Hour) {
			t.Fatal("a renewed a lease c took after it expired")
		}
		if expired, _ := db.ExpiredLeases(ctx, "environment/"); len(expired) != 0 {
			t.Fatalf("ExpiredLeases after takeover = %v, want none", expired)
		}

		// Many contenders at once: exactly one wins.
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []string
		)
		for _, h := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
			wg.Go(func() {
				ok, err := db.AcquireLease(ctx, "race", h, time.Hour)
				if err != nil {
					t.Errorf("AcquireLease(%s): %v", h, err)
				}
				if ok {
					mu.Lock()
					wins = append(wins, h)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("contended lease won by %v, want exactly one", wins)
		}
	})
}

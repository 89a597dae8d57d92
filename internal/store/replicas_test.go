package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestReplicas(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		t0 := time.Date(2025, 3, 1, 10, 0, 0, 123456789, time.UTC)
		a, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_a", URL: "http://10.0.0.1:3000", StartedAt: t0, HeartbeatAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.GetReplica(ctx, "rep_a"); err != nil || got != a || !got.StartedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Fatalf("GetReplica = %+v, %v; want %+v", got, err, a)
		}
		if _, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_b"}); err == nil {
			t.Fatal("RegisterReplica without a URL succeeded")
		}
		b, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_b", URL: "https://10.0.0.2:3000", StartedAt: t0.Add(time.Second)})
		if err != nil || b.HeartbeatAt.IsZero() {
			t.Fatalf("RegisterReplica(b) = %+v, %v", b, err)
		}

		t1 := t0.Add(5 * time.Second)
		if err := db.HeartbeatReplica(ctx, "rep_a", t1); err != nil {
			t.Fatal(err)
		}
		if err := db.SetReplicaDraining(ctx, "rep_a", true); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetReplica(ctx, "rep_a")
		if err != nil || !got.HeartbeatAt.Equal(t1.Truncate(time.Microsecond)) || !got.Draining || got.URL != a.URL {
			t.Fatalf("after heartbeat and drain: %+v, %v", got, err)
		}
		for _, err := range []error{
			db.HeartbeatReplica(ctx, "rep_nobody", t1),
			db.SetReplicaDraining(ctx, "rep_nobody", true),
		} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("an unknown replica: %v, want ErrNotFound", err)
			}
		}
		if _, err := db.GetReplica(ctx, "rep_nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetReplica(unknown) = %v", err)
		}
		list, err := db.ListReplicas(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "rep_a" || list[1].ID != "rep_b" {
			t.Fatalf("ListReplicas = %+v, %v", list, err)
		}

		// Registering again (the row was pruned while the replica was cut
		// off) replaces the row.
		again, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_a", URL: "http://10.0.0.9:3000", StartedAt: t0, HeartbeatAt: t1})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetReplica(ctx, "rep_a"); got != again || got.Draining {
			t.Fatalf("re-registered = %+v, want %+v", got, again)
		}
	})
}

func TestTunnelHolders(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		t0 := time.Date(2025, 3, 1, 10, 0, 0, 987654321, time.UTC)
		for _, id := range []string{"rep_a", "rep_b"} {
			if _, err := db.RegisterReplica(ctx, store.Replica{ID: id, URL: "http://" + id, StartedAt: t0, HeartbeatAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.GetTunnelHolder(ctx, "env_1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetTunnelHolder before any = %v, want ErrNotFound", err)
		}
		if err := db.SetTunnelHolder(ctx, "env_1", "rep_nobody", t0); err == nil {
			t.Fatal("a tunnel held by an unregistered replica was recorded")
		}

		sinceA := t0.Add(time.Second)
		if err := db.SetTunnelHolder(ctx, "env_1", "rep_a", sinceA); err != nil {
			t.Fatal(err)
		}
		h, err := db.GetTunnelHolder(ctx, "env_1")
		if err != nil || h.EnvironmentID != "env_1" || h.Replica.ID != "rep_a" || h.Replica.URL != "http://rep_a" ||
			!h.Since.Equal(sinceA.Truncate(time.Microsecond)) || !h.Replica.HeartbeatAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Fatalf("GetTunnelHolder = %+v, %v", h, err)
		}

		// The supervisor moved to b: the newer connection replaces a's,
		// and the end of a's connection does not erase it.
		sinceB := t0.Add(2 * time.Second)
		if err := db.SetTunnelHolder(ctx, "env_1", "rep_b", sinceB); err != nil {
			t.Fatal(err)
		}
		if gone, err := db.DeleteTunnelHolder(ctx, "env_1", "rep_a", sinceA); err != nil || gone {
			t.Fatalf("a's late delete = %v, %v; want nothing deleted", gone, err)
		}
		for rep, want := range map[string]int{"rep_a": 0, "rep_b": 1} {
			if n, err := db.CountTunnelHolders(ctx, rep); err != nil || n != want {
				t.Fatalf("CountTunnelHolders(%s) = %d, %v; want %d", rep, n, err, want)
			}
		}
		// Nor does the end of an older connection to b itself.
		if gone, err := db.DeleteTunnelHolder(ctx, "env_1", "rep_b", sinceA); err != nil || gone {
			t.Fatalf("b's older connection's delete = %v, %v; want nothing deleted", gone, err)
		}
		if h, err := db.GetTunnelHolder(ctx, "env_1"); err != nil || h.Replica.ID != "rep_b" || !h.Since.Equal(sinceB.Truncate(time.Microsecond)) {
			t.Fatalf("holder after stale deletes = %+v, %v; want rep_b", h, err)
		}
		if gone, err := db.DeleteTunnelHolder(ctx, "env_1", "rep_b", sinceB); err != nil || !gone {
			t.Fatalf("b's own delete = %v, %v", gone, err)
		}
		if _, err := db.GetTunnelHolder(ctx, "env_1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v, want ErrNotFound", err)
		}

		// A replica's tunnels go with it: shut down, or pruned as dead.
		for env, rep := range map[string]string{"env_2": "rep_a", "env_3": "rep_b"} {
			if err := db.SetTunnelHolder(ctx, env, rep, t0); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.DeleteReplica(ctx, "rep_a"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteReplica(ctx, "rep_a"); err != nil {
			t.Fatalf("deleting a replica twice: %v", err)
		}
		if _, err := db.GetTunnelHolder(ctx, "env_2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a deleted replica's tunnel: %v, want ErrNotFound", err)
		}
		if err := db.HeartbeatReplica(ctx, "rep_b", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_c", URL: "http://rep_c", StartedAt: t0, HeartbeatAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetTunnelHolder(ctx, "env_4", "rep_c", t0); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteReplicasBefore(ctx, t0.Add(30*time.Second)); err != nil || n != 1 {
			t.Fatalf("DeleteReplicasBefore = %d, %v; want 1 (rep_c)", n, err)
		}
		if _, err := db.GetTunnelHolder(ctx, "env_4"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a pruned replica's tunnel: %v, want ErrNotFound", err)
		}
		if h, err := db.GetTunnelHolder(ctx, "env_3"); err != nil || h.Replica.ID != "rep_b" {
			t.Fatalf("a live replica's tunnel after pruning: %+v, %v", h, err)
		}
	})
}

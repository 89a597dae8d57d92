package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestTouchEnvironment(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "touch@example.com")
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "t", LastAccessedAt: base})

		steps := []struct {
			name string
			at   time.Time
			want time.Time
		}{
			{"later moves it", base.Add(time.Minute), base.Add(time.Minute)},
			{"earlier does not", base.Add(30 * time.Second), base.Add(time.Minute)},
			{"same does not", base.Add(time.Minute), base.Add(time.Minute)},
			{"a microsecond later does", base.Add(time.Minute + time.Microsecond), base.Add(time.Minute + time.Microsecond)},
			{"other zone, later", base.Add(2 * time.Hour).In(time.FixedZone("W", -5*3600)), base.Add(2 * time.Hour)},
		}
		for _, s := range steps {
			if err := db.TouchEnvironment(ctx, e.ID, s.at); err != nil {
				t.Fatalf("%s: TouchEnvironment: %v", s.name, err)
			}
			got, err := db.GetEnvironment(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastAccessedAt.Equal(s.want) {
				t.Errorf("%s: LastAccessedAt = %v, want %v", s.name, got.LastAccessedAt, s.want)
			}
		}
		if err := db.TouchEnvironment(ctx, "env_missing", base); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing environment error %v, want ErrNotFound", err)
		}
		update(t, ctx, db, e.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })
		if err := db.TouchEnvironment(ctx, e.ID, base.Add(24*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("soft-deleted environment error %v, want ErrNotFound", err)
		}
	})
}

// TestTouchEnvironmentConcurrent: touches written together (one batch) still
// answer each caller for its own environment, and the latest time wins.
func TestTouchEnvironmentConcurrent(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "touches@example.com")
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		const envs, perEnv = 8, 25
		ids := make([]string, envs)
		for i := range ids {
			ids[i] = mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: fmt.Sprintf("c%d", i), LastAccessedAt: base}).ID
		}
		gone := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "gone", LastAccessedAt: base})
		update(t, ctx, db, gone.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })

		var wg sync.WaitGroup
		errs := make(chan error, envs*perEnv+2*perEnv)
		for i, id := range ids {
			for k := range perEnv {
				wg.Go(func() {
					// Env i's latest touch is base + i minutes + perEnv-1 seconds.
					at := base.Add(time.Duration(i)*time.Minute + time.Duration(k)*time.Second)
					if err := db.TouchEnvironment(ctx, id, at); err != nil {
						errs <- fmt.Errorf("touch %s: %w", id, err)
					}
				})
			}
		}
		for range perEnv {
			for _, id := range []string{"env_missing", gone.ID} {
				wg.Go(func() {
					if err := db.TouchEnvironment(ctx, id, base.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
						errs <- fmt.Errorf("touch of %s: %v, want ErrNotFound", id, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i, id := range ids {
			got, err := db.GetEnvironment(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := base.Add(time.Duration(i)*time.Minute + (perEnv-1)*time.Second)
			if !got.LastAccessedAt.Equal(want) {
				t.Errorf("env %d: LastAccessedAt = %v, want %v", i, got.LastAccessedAt, want)
			}
		}
		// A caller that gives up still has its touch written.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = db.TouchEnvironment(cctx, ids[0], base.Add(48*time.Hour))
		if err := db.TouchEnvironment(ctx, ids[1], base); err != nil { // waits for any batch in flight
			t.Fatal(err)
		}
		got, err := db.GetEnvironment(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastAccessedAt.Equal(base.Add(48 * time.Hour)) {
			t.Errorf("a cancelled caller's touch was lost: %v", got.LastAccessedAt)
		}
	})
}

func TestListIdleCandidates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "idle@example.com")
		cutoff := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		old := cutoff.Add(-time.Hour)
		cases := []struct {
			name     string
			status   store.Status
			autoStop int
			accessed time.Time
			deleted  bool
			want     bool
		}{
			{"idle-oldest", store.StatusRunning, 30, old.Add(-time.Hour), false, true},
			{"idle", store.StatusRunning, 30, old, false, true},
			{"just-before-cutoff", store.StatusRunning, 5, cutoff.Add(-time.Microsecond), false, true},
			{"at-cutoff", store.StatusRunning, 30, cutoff, false, false},
			{"recent", store.StatusRunning, 30, cutoff.Add(time.Minute), false, false},
			{"auto-stop-off", store.StatusRunning, 0, old, false, false},
			{"stopped", store.StatusStopped, 30, old, false, false},
			{"starting", store.StatusStarting, 30, old, false, false},
			{"deleted", store.StatusRunning, 30, old, true, false},
		}
		var want []string
		for _, c := range cases {
			e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: c.name, Status: c.status,
				AutoStopMinutes: c.autoStop, LastAccessedAt: c.accessed})
			if c.deleted {
				update(t, ctx, db, e.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })
			}
			if c.want {
				want = append(want, c.name)
			}
		}
		got, err := db.ListIdleCandidates(ctx, cutoff)
		if err != nil {
			t.Fatalf("ListIdleCandidates: %v", err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("idle candidates %v, want %v (least recently accessed first)", names, want)
		}
	})
}

func TestActivity(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "act@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "a"})
		other := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "b"})
		base := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
		events := []store.Activity{
			{EnvironmentID: e.ID, UserID: u.ID, Kind: "created", CreatedAt: base},
			{EnvironmentID: e.ID, UserID: u.ID, Kind: "started", Detail: "docker", CreatedAt: base.Add(time.Second)},
			{EnvironmentID: e.ID, Kind: "idle_stopped", Detail: "idle 30m", CreatedAt: base.Add(time.Hour)},
			{EnvironmentID: other.ID, UserID: u.ID, Kind: "created", CreatedAt: base},
		}
		for _, a := range events {
			if err := db.InsertActivity(ctx, a); err != nil {
				t.Fatalf("InsertActivity(%s): %v", a.Kind, err)
			}
		}
		if err := db.InsertActivity(ctx, store.Activity{EnvironmentID: e.ID, Kind: "ping"}); err != nil {
			t.Fatal(err)
		}

		got, err := db.ListActivity(ctx, e.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, a := range got {
			kinds = append(kinds, a.Kind)
		}
		if want := []string{"ping", "idle_stopped", "started", "created"}; !slices.Equal(kinds, want) {
			t.Fatalf("kinds %v, want %v (newest first)", kinds, want)
		}
		if time.Since(got[0].CreatedAt) > time.Minute {
			t.Errorf("zero CreatedAt not set to now: %v", got[0].CreatedAt)
		}
		idle := got[1]
		if idle.ID == 0 || idle.UserID != "" || idle.Detail != "idle 30m" || !idle.CreatedAt.Equal(base.Add(time.Hour)) || idle.EnvironmentID != e.ID {
			t.Errorf("idle event %+v", idle)
		}
		if got[2].UserID != u.ID || got[2].Detail != "docker" {
			t.Errorf("started event %+v", got[2])
		}
		limited, err := db.ListActivity(ctx, e.ID, 2)
		if err != nil || len(limited) != 2 || limited[0].Kind != "ping" {
			t.Errorf("limited list %+v, %v", limited, err)
		}
	})
}

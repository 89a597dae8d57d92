package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

// fullEnvironment sets every field, with times that are not UTC and carry
// nanoseconds, to check what survives the round trip.
func fullEnvironment(userID string) store.Environment {
	ist := time.FixedZone("IST", 5*3600+1800)
	return store.Environment{
		UserID:               userID,
		Name:                 "full",
		Status:               store.StatusRunning,
		StatusReason:         "reason",
		Runtime:              "docker",
		CloudRegion:          "eastus",
		RuntimeRef:           "c0ffee",
		TemplateName:         "node",
		BaseImage:            "dev8/node:20",
		InstanceType:         "balanced",
		CPUCores:             4,
		MemoryGB:             8,
		StorageGB:            50,
		EnvironmentVariables: map[string]string{"A": "1", "B": "two words", "Ü": "ñ\"'{}"},
		Ports:                []store.Port{{Port: 3000, Protocol: "http"}, {Port: 22, Protocol: "tcp"}},
		AutoStopMinutes:      30,
		VSCodeURL:            "https://example.com/vscode",
		SSHConnectionString:  "ssh -p 2222 dev8@example.com",
		EstimatedCostPerHour: 0.125,
		TotalCost:            12.3456789,
		RunningSince:         ptr(time.Date(2026, 1, 2, 3, 4, 5, 999999999, ist)),
		LastAccessedAt:       time.Date(2026, 1, 2, 4, 0, 0, 1500, ist),
		StoppedAt:            ptr(time.Date(2025, 12, 31, 23, 59, 59, 1, time.UTC)),
	}
}

func TestEnvironmentRoundTrip(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "rt@example.com")
		for _, tc := range []struct {
			name string
			env  store.Environment
		}{
			{"every field", fullEnvironment(u.ID)},
			{"nil maps, slices and pointers", store.Environment{UserID: u.ID, Name: "minimal"}},
			{"empty map and slice", store.Environment{UserID: u.ID, Name: "empty",
				EnvironmentVariables: map[string]string{}, Ports: []store.Port{}}},
			{"caller-chosen ID", store.Environment{ID: "env_chosen", UserID: u.ID, Name: "chosen"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := time.Now().Add(-time.Second)
				created := mustEnv(t, ctx, db, tc.env)
				if tc.env.ID != "" {
					if created.ID != tc.env.ID {
						t.Errorf("ID %q, want %q", created.ID, tc.env.ID)
					}
				} else {
					checkID(t, created.ID, "env_")
				}
				if created.CreatedAt.Before(before) || !created.UpdatedAt.Equal(created.CreatedAt) {
					t.Errorf("CreatedAt/UpdatedAt not set: %v %v", created.CreatedAt, created.UpdatedAt)
				}
				if tc.env.Status == "" && created.Status != store.StatusCreating {
					t.Errorf("default status %q, want CREATING", created.Status)
				}
				if tc.env.LastAccessedAt.IsZero() && !created.LastAccessedAt.Equal(created.CreatedAt) {
					t.Errorf("LastAccessedAt %v, want CreatedAt %v", created.LastAccessedAt, created.CreatedAt)
				}
				if !tc.env.LastAccessedAt.IsZero() && !created.LastAccessedAt.Equal(tc.env.LastAccessedAt.Truncate(time.Microsecond)) {
					t.Errorf("LastAccessedAt %v, want the given %v", created.LastAccessedAt, tc.env.LastAccessedAt)
				}

				got, err := db.GetEnvironment(ctx, created.ID)
				if err != nil {
					t.Fatalf("GetEnvironment: %v", err)
				}
				if !reflect.DeepEqual(got, created) {
					t.Errorf("read back\n %+v\nwant\n %+v", got, created)
				}
				if (got.EnvironmentVariables == nil) != (tc.env.EnvironmentVariables == nil) ||
					(got.Ports == nil) != (tc.env.Ports == nil) {
					t.Errorf("nil-ness of map/slice changed: %#v %#v", got.EnvironmentVariables, got.Ports)
				}

				// Everything but the store-owned fields survives an update too.
				want := got
				updated := update(t, ctx, db, got.ID, func(e *store.Environment) {})
				want.UpdatedAt = updated.UpdatedAt
				if !reflect.DeepEqual(updated, want) {
					t.Errorf("no-op update changed fields\n %+v\nwant\n %+v", updated, want)
				}
			})
		}
		if _, err := db.GetEnvironment(ctx, "env_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEnvironment(missing) error %v, want ErrNotFound", err)
		}
	})
}

func TestEnvironmentNameUniquePerUser(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		first := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})

		_, err := db.CreateEnvironment(ctx, store.Environment{UserID: alice.ID, Name: "web"})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name error %v, want ErrConflict", err)
		}
		mustEnv(t, ctx, db, store.Environment{UserID: bob.ID, Name: "web"}) // other user: fine
		other := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "api"})

		// Renaming onto a live name conflicts, and writes nothing.
		_, err = db.UpdateEnvironment(ctx, other.ID, func(e *store.Environment) error { e.Name = "web"; return nil })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("rename into duplicate error %v, want ErrConflict", err)
		}
		if got, _ := db.GetEnvironment(ctx, other.ID); got.Name != "api" {
			t.Errorf("failed rename left name %q", got.Name)
		}

		// Soft delete frees the name.
		deletedAt := time.Now()
		deleted := update(t, ctx, db, first.ID, func(e *store.Environment) {
			e.Status = store.StatusDeleting
			e.DeletedAt = &deletedAt
		})
		if deleted.DeletedAt == nil {
			t.Fatal("UpdateEnvironment did not return DeletedAt")
		}
		if _, err := db.GetEnvironment(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEnvironment(soft-deleted) error %v, want ErrNotFound", err)
		}
		if _, err := db.UpdateEnvironment(ctx, first.ID, func(*store.Environment) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateEnvironment(soft-deleted) error %v, want ErrNotFound", err)
		}
		again := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})
		if again.ID == first.ID {
			t.Error("re-created environment reused the deleted one's ID")
		}
		// And a second soft delete of the same name is fine too.
		update(t, ctx, db, again.ID, func(e *store.Environment) { e.DeletedAt = &deletedAt })
		mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})
	})
}

func TestListEnvironments(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		statuses := []store.Status{store.StatusRunning, store.StatusStopped, store.StatusError}
		var all []store.Environment // newest first, as List returns them
		for i := range 12 {
			owner := alice
			if i%3 == 2 {
				owner = bob
			}
			e := mustEnv(t, ctx, db, store.Environment{UserID: owner.ID, Name: fmt.Sprintf("env-%02d", i), Status: statuses[i%len(statuses)]})
			all = append([]store.Environment{e}, all...)
		}
		gone := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "gone", Status: store.StatusRunning})
		update(t, ctx, db, gone.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })

		// CreatedAt can tie within a microsecond; the order is then by ID.
		slices.SortStableFunc(all, func(a, b store.Environment) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		match := func(f store.EnvironmentFilter) []store.Environment {
			var out []store.Environment
			for _, e := range all {
				if (f.UserID == "" || e.UserID == f.UserID) && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, e.Status)) {
					out = append(out, e)
				}
			}
			return out
		}

		for _, tc := range []struct {
			name   string
			filter store.EnvironmentFilter
		}{
			{"everything", store.EnvironmentFilter{}},
			{"one user", store.EnvironmentFilter{UserID: alice.ID}},
			{"other user", store.EnvironmentFilter{UserID: bob.ID}},
			{"one status", store.EnvironmentFilter{Statuses: []store.Status{store.StatusRunning}}},
			{"two statuses for a user", store.EnvironmentFilter{UserID: alice.ID, Statuses: []store.Status{store.StatusRunning, store.StatusError}}},
			{"no match", store.EnvironmentFilter{Statuses: []store.Status{store.StatusCreating}}},
			{"unknown user", store.EnvironmentFilter{UserID: "usr_nobody"}},
			{"first page", store.EnvironmentFilter{Limit: 5}},
			{"middle page", store.EnvironmentFilter{Limit: 5, Offset: 5}},
			{"last page", store.EnvironmentFilter{Limit: 5, Offset: 10}},
			{"offset without limit", store.EnvironmentFilter{Offset: 7}},
			{"past the end", store.EnvironmentFilter{Limit: 5, Offset: 50}},
			{"filtered page", store.EnvironmentFilter{UserID: alice.ID, Limit: 3, Offset: 2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				matching := match(tc.filter)
				want := matching[min(tc.filter.Offset, len(matching)):]
				if tc.filter.Limit > 0 && len(want) > tc.filter.Limit {
					want = want[:tc.filter.Limit]
				}
				got, total, err := db.ListEnvironments(ctx, tc.filter)
				if err != nil {
					t.Fatalf("ListEnvironments: %v", err)
				}
				if total != len(matching) {
					t.Errorf("total %d, want %d", total, len(matching))
				}
				if len(got) != len(want) {
					t.Fatalf("got %d environments, want %d", len(got), len(want))
				}
				for i := range got {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("[%d] = %s (%s), want %s (%s)", i, got[i].Name, got[i].ID, want[i].Name, want[i].ID)
					}
				}
			})
		}
	})
}

func TestUpdateEnvironmentRollsBackOnError(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "rb@example.com")
		orig := mustEnv(t, ctx, db, fullEnvironment(u.ID))

		errVeto := errors.New("veto")
		_, err := db.UpdateEnvironment(ctx, orig.ID, func(e *store.Environment) error {
			e.Name = "changed"
			e.TotalCost = 999
			e.EnvironmentVariables["NEW"] = "x"
			return fmt.Errorf("lifecycle says no: %w", errVeto)
		})
		if !errors.Is(err, errVeto) {
			t.Fatalf("error %v, want one wrapping errVeto", err)
		}
		got, err := db.GetEnvironment(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, orig) {
			t.Errorf("after failed update\n %+v\nwant unchanged\n %+v", got, orig)
		}

		for _, tc := range []struct {
			name string
			fn   func(*store.Environment)
		}{
			{"ID", func(e *store.Environment) { e.ID = "env_other" }},
			{"UserID", func(e *store.Environment) { e.UserID = "usr_other" }},
			{"CreatedAt", func(e *store.Environment) { e.CreatedAt = e.CreatedAt.Add(time.Hour) }},
		} {
			_, err := db.UpdateEnvironment(ctx, orig.ID, func(e *store.Environment) error { tc.fn(e); return nil })
			if err == nil {
				t.Errorf("changing %s: no error", tc.name)
			}
		}
		if got, _ := db.GetEnvironment(ctx, orig.ID); !reflect.DeepEqual(got, orig) {
			t.Errorf("rejected updates changed the row: %+v", got)
		}

		if _, err := db.UpdateEnvironment(ctx, "env_missing", func(*store.Environment) error {
			t.Error("fn called for a missing environment")
			return nil
		}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing environment error %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateEnvironmentChangesFields(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "upd@example.com")
		orig := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "before"})
		next := fullEnvironment(u.ID)
		updated := update(t, ctx, db, orig.ID, func(e *store.Environment) {
			id, created := e.ID, e.CreatedAt
			*e = next
			e.ID, e.CreatedAt = id, created
		})
		if updated.UpdatedAt.Before(orig.UpdatedAt) {
			t.Errorf("UpdatedAt went back: %v < %v", updated.UpdatedAt, orig.UpdatedAt)
		}
		got, err := db.GetEnvironment(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, updated) {
			t.Errorf("read back\n %+v\nwant\n %+v", got, updated)
		}
		if got.Name != "full" || got.Ports[0].Port != 3000 || *got.RunningSince != next.RunningSince.UTC().Truncate(time.Microsecond) {
			t.Errorf("fields not updated: %+v", got)
		}
		// Clearing pointers, maps and slices clears them.
		cleared := update(t, ctx, db, orig.ID, func(e *store.Environment) {
			e.RunningSince, e.StoppedAt, e.EnvironmentVariables, e.Ports = nil, nil, nil, nil
		})
		got, _ = db.GetEnvironment(ctx, orig.ID)
		if !reflect.DeepEqual(got, cleared) || got.RunningSince != nil || got.EnvironmentVariables != nil || got.Ports != nil {
			t.Errorf("cleared fields read back as %+v", got)
		}
	})
}

func TestUpdateEnvironmentConcurrent(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "conc@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "counter"})
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				_, err := db.UpdateEnvironment(ctx, e.ID, func(e *store.Environment) error {
					e.TotalCost++
					return nil
				})
				errs <- err
			})
		}
		// Readers running alongside must neither fail nor block the writers.
		for range 5 {
			wg.Go(func() {
				<-start
				for range 20 {
					if _, err := db.GetEnvironment(ctx, e.ID); err != nil {
						errs <- fmt.Errorf("concurrent read: %w", err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		got, err := db.GetEnvironment(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TotalCost != n {
			t.Errorf("TotalCost = %v after %d concurrent increments, want %d", got.TotalCost, n, n)
		}
	})
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestListUsersFiltersAndPages(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		admin := mustUser(t, ctx, db, "root@example.com")
		var members []store.User
		for i := range 5 {
			members = append(members, mustUser(t, ctx, db, fmt.Sprintf("Dev%d_x@corp.example", i)))
		}
		if _, _, err := db.UpdateManagedUser(ctx, members[1].ID, func(a *store.ManagedUser) error {
			a.SuspendedAt = ptr(time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		ids := func(accs []store.ManagedUser) []string {
			var out []string
			for _, a := range accs {
				out = append(out, a.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name  string
			f     store.UserFilter
			want  []string
			total int
		}{
			{"all", store.UserFilter{}, []string{admin.ID, members[0].ID, members[1].ID, members[2].ID, members[3].ID, members[4].ID}, 6},
			{"page", store.UserFilter{Limit: 2, Offset: 1}, []string{members[0].ID, members[1].ID}, 6},
			{"offset only", store.UserFilter{Offset: 5}, []string{members[4].ID}, 6},
			{"email any case", store.UserFilter{Email: "CORP.example"}, []string{members[0].ID, members[1].ID, members[2].ID, members[3].ID, members[4].ID}, 5},
			{"email wildcard is literal", store.UserFilter{Email: "dev1_"}, []string{members[1].ID}, 1},
			{"percent is literal", store.UserFilter{Email: "%"}, nil, 0},
			{"role", store.UserFilter{Role: store.RoleAdmin}, []string{admin.ID}, 1},
			{"suspended", store.UserFilter{Suspended: ptr(true)}, []string{members[1].ID}, 1},
			{"active members", store.UserFilter{Suspended: ptr(false), Role: store.RoleMember, Limit: 10}, []string{members[0].ID, members[2].ID, members[3].ID, members[4].ID}, 4},
		} {
			got, total, err := db.ListUsers(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if fmt.Sprint(ids(got)) != fmt.Sprint(tc.want) || total != tc.total {
				t.Errorf("%s: got %v (total %d), want %v (total %d)", tc.name, ids(got), total, tc.want, tc.total)
			}
		}
	})
}

func TestUpdateManagedUser(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		admin := mustUser(t, ctx, db, "admin@example.com")
		member := mustUser(t, ctx, db, "member@example.com")

		// The only admin can neither be demoted nor suspended.
		for name, fn := range map[string]func(*store.ManagedUser) error{
			"demote":  func(a *store.ManagedUser) error { a.Role = store.RoleMember; return nil },
			"suspend": func(a *store.ManagedUser) error { a.SuspendedAt = ptr(time.Now()); return nil },
		} {
			if _, _, err := db.UpdateManagedUser(ctx, admin.ID, fn); !errors.Is(err, store.ErrLastAdmin) {
				t.Errorf("%s the last admin: err = %v, want ErrLastAdmin", name, err)
			}
		}
		if acc, err := db.GetManagedUser(ctx, admin.ID); err != nil || acc.Role != store.RoleAdmin || acc.SuspendedAt != nil {
			t.Fatalf("after refusals: %+v, %v", acc, err)
		}

		// Promote the member and set quota overrides.
		before, after, err := db.UpdateManagedUser(ctx, member.ID, func(a *store.ManagedUser) error {
			a.Role = store.RoleAdmin
			a.Quota.MaxEnvironments = ptr(3)
			a.Quota.MaxRunningEnvironments = ptr(0)
			a.Quota.MonthlyBudgetUSD = ptr(12.5)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if before.Role != store.RoleMember || before.Quota.MaxEnvironments != nil || after.Role != store.RoleAdmin {
			t.Errorf("before %+v after %+v", before, after)
		}
		got, err := db.GetManagedUser(ctx, member.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != store.RoleAdmin || *got.Quota.MaxEnvironments != 3 || *got.Quota.MaxRunningEnvironments != 0 || *got.Quota.MonthlyBudgetUSD != 12.5 {
			t.Errorf("stored %+v, quota %+v", got.User, got.Quota)
		}
		// Now the first admin may step down; the second may not follow.
		if _, _, err := db.UpdateManagedUser(ctx, admin.ID, func(a *store.ManagedUser) error { a.Role = store.RoleMember; return nil }); err != nil {
			t.Fatalf("demote with another admin: %v", err)
		}
		if _, _, err := db.UpdateManagedUser(ctx, member.ID, func(a *store.ManagedUser) error { a.SuspendedAt = ptr(time.Now()); return nil }); !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("suspend the new last admin: %v", err)
		}
		// A suspended admin does not count as an admin who keeps things
		// running.
		if _, _, err := db.UpdateManagedUser(ctx, admin.ID, func(a *store.ManagedUser) error {
			a.Role = store.RoleAdmin
			a.SuspendedAt = ptr(time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.UpdateManagedUser(ctx, member.ID, func(a *store.ManagedUser) error { a.Role = store.RoleMember; return nil }); !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("demote the last active admin while a suspended one exists: %v", err)
		}
		// Clearing overrides stores NULL.
		if _, _, err := db.UpdateManagedUser(ctx, member.ID, func(a *store.ManagedUser) error { a.Quota = store.UserQuota{}; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.GetManagedUser(ctx, member.ID); got.Quota != (store.UserQuota{}) {
			t.Errorf("cleared quota reads back as %+v", got.Quota)
		}
		if _, _, err := db.UpdateManagedUser(ctx, "usr_missing", func(*store.ManagedUser) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing user: %v", err)
		}
		// The suspension reaches the token lookup that authenticates.
		tokHash := []byte("suspended-admin-token-hash-0000")
		if _, err := db.CreateAPIToken(ctx, store.APIToken{UserID: admin.ID, Name: "t", Hash: tokHash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, owner, err := db.GetAPITokenByHash(ctx, tokHash); err != nil || owner.SuspendedAt == nil {
			t.Errorf("token of a suspended user: owner %+v, %v", owner, err)
		}
	})
}

// Two admins demoting each other at once: exactly one may succeed.
func TestUpdateManagedUserKeepsAnAdminUnderRace(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		for round := range 20 {
			a := mustUser(t, ctx, db, fmt.Sprintf("a%d@example.com", round))
			b := mustUser(t, ctx, db, fmt.Sprintf("b%d@example.com", round))
			for _, u := range []store.User{a, b} {
				if _, _, err := db.UpdateManagedUser(ctx, u.ID, func(x *store.ManagedUser) error { x.Role = store.RoleAdmin; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			// Every other admin steps aside first, so a and b are the only ones.
			accs, _, err := db.ListUsers(ctx, store.UserFilter{Role: store.RoleAdmin})
			if err != nil {
				t.Fatal(err)
			}
			for _, acc := range accs {
				if acc.ID != a.ID && acc.ID != b.ID {
					if _, _, err := db.UpdateManagedUser(ctx, acc.ID, func(x *store.ManagedUser) error { x.Role = store.RoleMember; return nil }); err != nil {
						t.Fatal(err)
					}
				}
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, 2)
			for i, u := range []store.User{a, b} {
				wg.Go(func() {
					<-start
					_, _, errs[i] = db.UpdateManagedUser(ctx, u.ID, func(x *store.ManagedUser) error {
						if i == 0 {
							x.Role = store.RoleMember
						} else {
							x.SuspendedAt = ptr(time.Now())
						}
						return nil
					})
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, store.ErrLastAdmin):
					t.Fatalf("unexpected error: %v", err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of 2 changes succeeded (%v), want exactly 1", round, ok, errs)
			}
			active, _, err := db.ListUsers(ctx, store.UserFilter{Role: store.RoleAdmin, Suspended: ptr(false)})
			if err != nil || len(active) != 1 {
				t.Fatalf("round %d: %d active admins (%v), want 1", round, len(active), err)
			}
		}
	})
}

func TestCreateEnvironmentWithinLimits(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		limits := store.EnvironmentLimits{UserID: alice.ID, MaxEnvironments: 3, MaxActive: 2}

		// Bob's environments never count against Alice.
		for i := range 4 {
			mustEnv(t, ctx, db, store.Environment{UserID: bob.ID, Name: fmt.Sprintf("b%d", i)})
		}
		a1, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a1"}, limits)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a2"}, limits); err != nil {
			t.Fatal(err)
		}
		var qe *store.QuotaExceededError
		_, err = db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a3"}, limits)
		if !errors.As(err, &qe) || qe.Limit != "running environments" || qe.Max != 2 || qe.InUse != 2 {
			t.Fatalf("third active: %v", err)
		}
		// A stopped one frees a running slot but still counts as an environment.
		update(t, ctx, db, a1.ID, func(e *store.Environment) { e.Status = store.StatusStopped })
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a3"}, limits); err != nil {
			t.Fatal(err)
		}
		_, err = db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a4"}, limits)
		if !errors.As(err, &qe) || qe.Limit != "environments" || qe.Max != 3 || qe.InUse != 3 {
			t.Fatalf("fourth: %v", err)
		}
		if c, err := db.CountEnvironments(ctx, alice.ID); err != nil || c != (store.EnvironmentCounts{Environments: 3, Active: 2}) {
			t.Errorf("CountEnvironments = %+v, %v", c, err)
		}
		// One being deleted no longer counts.
		update(t, ctx, db, a1.ID, func(e *store.Environment) { e.Status = store.StatusDeleting })
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a4", Status: store.StatusStopped}, limits); err != nil {
			t.Fatal(err)
		}
		// Unlimited.
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a5"}, store.EnvironmentLimits{UserID: alice.ID}); err != nil {
			t.Fatal(err)
		}
		// Limits for someone else are a bug, not a pass.
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: alice.ID, Name: "a6"}, store.EnvironmentLimits{UserID: bob.ID}); err == nil {
			t.Error("limits of another user accepted")
		}
	})
}

// N concurrent creates by a user with room for one: exactly one succeeds.
func TestCreateEnvironmentWithinLimitsUnderRace(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		for _, tc := range []struct {
			name   string
			limits func(userID string) store.EnvironmentLimits
			prep   store.Status
		}{
			{"environments", func(id string) store.EnvironmentLimits {
				return store.EnvironmentLimits{UserID: id, MaxEnvironments: 3}
			}, store.StatusStopped},
			{"running", func(id string) store.EnvironmentLimits {
				return store.EnvironmentLimits{UserID: id, MaxActive: 3}
			}, store.StatusRunning},
		} {
			// Several rounds, each released at once, so that the creates
			// overlap inside the engine.
			for round := range 10 {
				u := mustUser(t, ctx, db, fmt.Sprintf("%s%d@example.com", tc.name, round))
				for i := range 2 {
					mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: fmt.Sprintf("pre%d", i), Status: tc.prep})
				}
				const n = 12
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					errs  = make([]error, n)
				)
				for i := range n {
					wg.Go(func() {
						<-start
						_, errs[i] = db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: u.ID, Name: fmt.Sprintf("c%d", i)}, tc.limits(u.ID))
					})
				}
				close(start)
				wg.Wait()
				ok := 0
				for _, err := range errs {
					var qe *store.QuotaExceededError
					switch {
					case err == nil:
						ok++
					case !errors.As(err, &qe):
						t.Fatalf("%s: unexpected error %v", tc.name, err)
					}
				}
				if ok != 1 {
					t.Errorf("%s round %d: %d of %d creates succeeded, want 1", tc.name, round, ok, n)
				}
			}
		}
	})
}

// N concurrent starts by a user with room for one more running: exactly one.
func TestUpdateEnvironmentWithinLimitsUnderRace(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "u@example.com")
		limits := store.EnvironmentLimits{UserID: u.ID, MaxActive: 2}
		mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "running", Status: store.StatusRunning})
		const n = 8
		var stopped []store.Environment
		for i := range n {
			stopped = append(stopped, mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: fmt.Sprintf("s%d", i), Status: store.StatusStopped}))
		}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, n)
		)
		for i, e := range stopped {
			wg.Go(func() {
				<-start
				_, errs[i] = db.UpdateEnvironmentWithinLimits(ctx, e.ID, limits, func(e *store.Environment) error {
					e.Status = store.StatusStarting
					return nil
				})
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			var qe *store.QuotaExceededError
			switch {
			case err == nil:
				ok++
			case !errors.As(err, &qe) || qe.Max != 2 || qe.InUse != 2:
				t.Fatalf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d starts succeeded, want 1", ok, n)
		}
		if c, _ := db.CountEnvironments(ctx, u.ID); c.Active != 2 {
			t.Errorf("active = %d, want 2", c.Active)
		}
		// Changes that do not make it active pass at the limit.
		if _, err := db.UpdateEnvironmentWithinLimits(ctx, stopped[0].ID, limits, func(e *store.Environment) error {
			e.Name = "renamed"
			return nil
		}); err != nil {
			t.Errorf("rename at the limit: %v", err)
		}
	})
}

// The limits are an argument: the plain writes enforce none, the
// WithinLimits ones enforce theirs on create and on start.
func TestEnvironmentWritesWithExplicitLimits(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "q@example.com")
		free, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "free", Status: store.StatusRunning})
		if err != nil {
			t.Fatal(err)
		}
		var qe *store.QuotaExceededError
		if _, err := db.CreateEnvironmentWithinLimits(ctx, store.Environment{UserID: u.ID, Name: "second"}, store.EnvironmentLimits{UserID: u.ID, MaxEnvironments: 1}); !errors.As(err, &qe) {
			t.Fatalf("over the limit: %v", err)
		}
		update(t, ctx, db, free.ID, func(e *store.Environment) { e.Status = store.StatusStopped })
		second := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "second"})
		limits := store.EnvironmentLimits{UserID: u.ID, MaxActive: 1}
		if _, err := db.UpdateEnvironmentWithinLimits(ctx, free.ID, limits, func(e *store.Environment) error { e.Status = store.StatusStarting; return nil }); !errors.As(err, &qe) {
			t.Fatalf("start over the limit: %v", err)
		}
		if _, err := db.UpdateEnvironmentWithinLimits(ctx, second.ID, limits, func(e *store.Environment) error { e.Status = store.StatusStopped; return nil }); err != nil {
			t.Fatalf("stop under limits: %v", err)
		}
	})
}

func TestListEnvironmentsForCost(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "c@example.com")
		live := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "live"})
		old := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "old"})
		recent := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "recent"})
		since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		update(t, ctx, db, old.ID, func(e *store.Environment) { e.DeletedAt = ptr(since.Add(-time.Hour)) })
		update(t, ctx, db, recent.ID, func(e *store.Environment) { e.DeletedAt = ptr(since.Add(time.Hour)) })
		got, err := db.ListEnvironmentsForCost(ctx, u.ID, since)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range got {
			ids[e.ID] = true
		}
		if len(got) != 2 || !ids[live.ID] || !ids[recent.ID] {
			t.Errorf("got %v, want %s and %s", ids, live.ID, recent.ID)
		}
	})
}

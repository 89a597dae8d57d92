package quota_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/store"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newUser(t *testing.T, db *store.DB, email string) store.User {
	t.Helper()
	u, err := db.CreateUser(t.Context(), store.User{Email: email, Name: email, PasswordHash: "$2a$10$notreal"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newEnv stores an environment of userID, then lets fn change it.
func newEnv(t *testing.T, db *store.DB, userID, name string, fn func(*store.Environment)) store.Environment {
	t.Helper()
	ctx := t.Context()
	e, err := db.CreateEnvironment(ctx, store.Environment{UserID: userID, Name: name, Status: store.StatusStopped})
	if err != nil {
		t.Fatal(err)
	}
	if e, err = db.UpdateEnvironment(ctx, e.ID, func(e *store.Environment) error { fn(e); return nil }); err != nil {
		t.Fatal(err)
	}
	return e
}

// MonthCost counts this calendar month (UTC): environments created this
// month in full, older ones only for their current run since the 1st.
func TestMonthCost(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openStore(t)
	u := newUser(t, db, "ada@example.com")
	// The store dates environments by the real clock; the policy's clock is
	// put two hours into a later month, so they were all created before it.
	month := quota.MonthStart(time.Now().UTC().AddDate(0, 2, 0))
	later := quota.New(db, quota.Limits{}, func() time.Time { return month.Add(2 * time.Hour) })
	newEnv(t, db, u.ID, "running", func(e *store.Environment) {
		e.Status, e.TotalCost, e.EstimatedCostPerHour = store.StatusRunning, 100, 1.5
		since := month.Add(-10 * time.Hour) // ran into this month: 2 h of it count
		e.RunningSince = &since
	})
	newEnv(t, db, u.ID, "stopped", func(e *store.Environment) { e.TotalCost = 50 }) // settled before: not this month's
	newEnv(t, db, u.ID, "deleted-before", func(e *store.Environment) {
		gone := month.Add(-time.Hour)
		e.Status, e.DeletedAt = store.StatusDeleting, &gone
	})
	got, err := later.MonthCost(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 {
		t.Errorf("older environments: month cost %v, want 3 (2 h at 1.5)", got)
	}

	// Back to now: everything was created this month and counts in full,
	// a deleted one too.
	db2 := openStore(t)
	u2 := newUser(t, db2, "bob@example.com")
	newEnv(t, db2, u2.ID, "gone", func(e *store.Environment) {
		now := time.Now()
		e.TotalCost, e.DeletedAt = 4.25, &now
	})
	if got, err := quota.New(db2, quota.Limits{}, time.Now).MonthCost(ctx, u2.ID); err != nil || got != 4.25 {
		t.Errorf("deleted this month: month cost %v, %v; want 4.25", got, err)
	}
}

// A user's overrides replace the installation's limits one by one; the
// budget refuses new compute once spent, never a start of what already
// runs.
func TestAdmit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openStore(t)
	u := newUser(t, db, "ada@example.com")
	p := quota.New(db, quota.Limits{MaxEnvironments: 3, MaxRunningEnvironments: 2, MonthlyBudgetUSD: 5}, nil)

	l, err := p.Admit(ctx, u.ID, true)
	if err != nil || l != (store.EnvironmentLimits{UserID: u.ID, MaxEnvironments: 3, MaxActive: 2}) {
		t.Fatalf("defaults: %+v, %v", l, err)
	}
	newEnv(t, db, u.ID, "spent", func(e *store.Environment) { e.TotalCost = 5 })
	var be *quota.BudgetExceededError
	if _, err := p.Admit(ctx, u.ID, true); !errors.As(err, &be) || be.BudgetUSD != 5 || be.SpentUSD != 5 {
		t.Fatalf("budget spent: %v", err)
	}
	if _, err := p.Admit(ctx, u.ID, false); err != nil {
		t.Fatalf("no new compute, budget spent: %v", err)
	}

	zero, six := 0, 6.0
	if _, _, err := db.UpdateManagedUser(ctx, u.ID, func(m *store.ManagedUser) error {
		m.Quota.MaxRunningEnvironments, m.Quota.MonthlyBudgetUSD = &zero, &six
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if l, err = p.Admit(ctx, u.ID, true); err != nil || l != (store.EnvironmentLimits{UserID: u.ID, MaxEnvironments: 3}) {
		t.Fatalf("overridden: %+v, %v", l, err)
	}
	s, err := p.UserStatus(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := quota.Limits{MaxEnvironments: 3, MaxRunningEnvironments: 0, MonthlyBudgetUSD: 6}
	if s.Limits != want || s.Environments != 1 || s.RunningEnvironments != 0 || s.MonthCostUSD != 5 || s.Overrides.MonthlyBudgetUSD == nil {
		t.Errorf("status: %+v", s)
	}
	if _, err := p.Admit(ctx, "usr_nobody", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
}

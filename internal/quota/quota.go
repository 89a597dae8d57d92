// Package quota is the installation's policy on how much each user may
// have: how many environments, how many running, and what they may cost a
// month. The store enforces the environment limits inside its writes
// (store.EnvironmentLimits); this package decides what they are, checks
// the monthly budget, and reports a user's limits and usage.
package quota

import (
	"context"
	"fmt"
	"time"

	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
)

// Limits bound what one user may have. 0 is unlimited (no budget). An
// admin overrides them per user (store.UserQuota); admins are bound by
// their own limits like everyone else.
type Limits struct {
	// MaxEnvironments counts every environment the user has but those being
	// deleted.
	MaxEnvironments int
	// MaxRunningEnvironments counts the environments in CREATING, STARTING
	// or RUNNING: those that hold, or are about to hold, compute.
	MaxRunningEnvironments int
	// MonthlyBudgetUSD is checked when an environment is created or started:
	// once the user's environments have cost that much this calendar month
	// (UTC), both are refused until the month ends. See Policy.MonthCost for
	// what counts.
	MonthlyBudgetUSD float64
}

// DefaultLimits are dev8 server's defaults, the seed's.
var DefaultLimits = Limits{MaxEnvironments: 10, MaxRunningEnvironments: 5}

// Override is l with o's values where the admin set one.
func (l Limits) Override(o store.UserQuota) Limits {
	if o.MaxEnvironments != nil {
		l.MaxEnvironments = *o.MaxEnvironments
	}
	if o.MaxRunningEnvironments != nil {
		l.MaxRunningEnvironments = *o.MaxRunningEnvironments
	}
	if o.MonthlyBudgetUSD != nil {
		l.MonthlyBudgetUSD = *o.MonthlyBudgetUSD
	}
	return l
}

// Store is what the policy reads.
type Store interface {
	GetManagedUser(ctx context.Context, id string) (store.ManagedUser, error)
	CountEnvironments(ctx context.Context, userID string) (store.EnvironmentCounts, error)
	ListEnvironmentsForCost(ctx context.Context, userID string, since time.Time) ([]store.Environment, error)
}

// Policy applies an installation's default limits and each user's
// overrides. It is the lifecycle manager's lifecycle.QuotaPolicy.
type Policy struct {
	store    Store
	defaults Limits
	now      func() time.Time
}

var _ lifecycle.QuotaPolicy = (*Policy)(nil)

// New returns the policy giving every user defaults unless an admin
// overrides them; now is the clock months are counted by (nil: time.Now).
func New(st Store, defaults Limits, now func() time.Time) *Policy {
	if now == nil {
		now = time.Now
	}
	return &Policy{store: st, defaults: defaults, now: now}
}

// Effective are acc's limits: its overrides, else the installation's.
func (p *Policy) Effective(acc store.ManagedUser) Limits {
	return p.defaults.Override(acc.Quota)
}

// BudgetExceededError refuses new compute to a user whose environments
// have cost their monthly budget.
type BudgetExceededError struct {
	BudgetUSD float64
	SpentUSD  float64
}

func (e *BudgetExceededError) Error() string {
	return fmt.Sprintf("quota exceeded: $%.2f of a monthly budget of $%.2f spent", e.SpentUSD, e.BudgetUSD)
}

// Admit checks ownerID's monthly budget when addsCompute (a create, or the
// start of an environment not already counted as running), refusing with a
// *BudgetExceededError once it is spent, and returns the limits the store
// enforces in the same transaction as the write. Quotas are the owner's:
// an admin acting on someone's environment uses that person's.
func (p *Policy) Admit(ctx context.Context, ownerID string, addsCompute bool) (store.EnvironmentLimits, error) {
	acc, err := p.store.GetManagedUser(ctx, ownerID)
	if err != nil {
		return store.EnvironmentLimits{}, fmt.Errorf("load quota: %w", err)
	}
	l := p.Effective(acc)
	if addsCompute && l.MonthlyBudgetUSD > 0 {
		// Not part of the write's transaction: cost accrues by the minute
		// anyway, so the budget is a stop for new work, not a hard cap.
		spent, err := p.MonthCost(ctx, ownerID)
		if err != nil {
			return store.EnvironmentLimits{}, fmt.Errorf("month cost: %w", err)
		}
		if spent >= l.MonthlyBudgetUSD {
			return store.EnvironmentLimits{}, &BudgetExceededError{BudgetUSD: l.MonthlyBudgetUSD, SpentUSD: spent}
		}
	}
	return store.EnvironmentLimits{
		UserID:          ownerID,
		MaxEnvironments: l.MaxEnvironments,
		MaxActive:       l.MaxRunningEnvironments,
	}, nil
}

// Status is a user's limits in force and what they use, counted as the
// limits count it.
type Status struct {
	Limits
	Environments        int
	RunningEnvironments int
	MonthCostUSD        float64
	// Overrides are the admin's per-user values; nil takes the default.
	Overrides store.UserQuota
}

// Status is acc's limits and usage.
func (p *Policy) Status(ctx context.Context, acc store.ManagedUser) (Status, error) {
	c, err := p.store.CountEnvironments(ctx, acc.ID)
	if err != nil {
		return Status{}, fmt.Errorf("count environments: %w", err)
	}
	cost, err := p.MonthCost(ctx, acc.ID)
	if err != nil {
		return Status{}, fmt.Errorf("month cost: %w", err)
	}
	return Status{
		Limits:              p.Effective(acc),
		Environments:        c.Environments,
		RunningEnvironments: c.Active,
		MonthCostUSD:        cost,
		Overrides:           acc.Quota,
	}, nil
}

// UserStatus is userID's limits and usage.
func (p *Policy) UserStatus(ctx context.Context, userID string) (Status, error) {
	acc, err := p.store.GetManagedUser(ctx, userID)
	if err != nil {
		return Status{}, fmt.Errorf("load quota: %w", err)
	}
	return p.Status(ctx, acc)
}

// MonthStart is the first instant of t's calendar month, UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// MonthCost is what userID's environments have cost this calendar month
// (UTC), from the cost the lifecycle accrues on each environment
// (estimated_cost_per_hour × running time):
//
//   - an environment created this month counts in full (its total_cost,
//     plus the run in progress), deleted or not;
//   - an environment created before this month counts the part of its
//     current run since the 1st. Runs it finished earlier this month are
//     folded into its lifetime total_cost, which is not kept per month, so
//     they are not counted.
//
// Resource samples (cost_amount in /usage) are not used: they exist only
// while a supervisor reports, and are pruned after the retention period.
func (p *Policy) MonthCost(ctx context.Context, userID string) (float64, error) {
	now := p.now().UTC()
	start := MonthStart(now)
	envs, err := p.store.ListEnvironmentsForCost(ctx, userID, start)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, e := range envs {
		if !e.CreatedAt.Before(start) {
			total += lifecycle.TotalCost(e, now)
			continue
		}
		if e.RunningSince != nil && now.After(*e.RunningSince) {
			from := e.RunningSince.UTC()
			if from.Before(start) {
				from = start
			}
			total += now.Sub(from).Hours() * e.EstimatedCostPerHour
		}
	}
	return lifecycle.RoundCost(total), nil
}

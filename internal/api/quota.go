package api

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
)

// Quotas bound what one user may have. 0 is unlimited (no budget). An
// admin overrides them per user with PATCH /api/v1/users/{id}; admins are
// bound by their own quotas like everyone else.
type Quotas struct {
	// MaxEnvironments counts every environment the user has but those being
	// deleted.
	MaxEnvironments int
	// MaxRunningEnvironments counts the environments in CREATING, STARTING
	// or RUNNING: those that hold, or are about to hold, compute.
	MaxRunningEnvironments int
	// MonthlyBudgetUSD is checked when an environment is created or started:
	// once the user's environments have cost that much this calendar month
	// (UTC), both are refused until the month ends. See monthCost for what
	// counts.
	MonthlyBudgetUSD float64
}

// DefaultQuotas are dev8 server's defaults, the seed's.
var DefaultQuotas = Quotas{MaxEnvironments: 10, MaxRunningEnvironments: 5}

// UserAdminStore is the store's side of users' roles, suspension and
// quotas.
type UserAdminStore interface {
	ListUsers(ctx context.Context, f store.UserFilter) ([]store.ManagedUser, int, error)
	GetManagedUser(ctx context.Context, id string) (store.ManagedUser, error)
	UpdateManagedUser(ctx context.Context, id string, fn func(*store.ManagedUser) error) (before, after store.ManagedUser, err error)
	CountEnvironments(ctx context.Context, userID string) (store.EnvironmentCounts, error)
	ListEnvironmentsForCost(ctx context.Context, userID string, since time.Time) ([]store.Environment, error)
}

// effectiveQuotas are acc's limits: its overrides, else the server's.
func (a *API) effectiveQuotas(acc store.ManagedUser) Quotas {
	q := a.quotas
	if v := acc.Quota.MaxEnvironments; v != nil {
		q.MaxEnvironments = *v
	}
	if v := acc.Quota.MaxRunningEnvironments; v != nil {
		q.MaxRunningEnvironments = *v
	}
	if v := acc.Quota.MonthlyBudgetUSD; v != nil {
		q.MonthlyBudgetUSD = *v
	}
	return q
}

// monthStart is the first instant of t's calendar month, UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// monthCost is what userID's environments have cost this calendar month
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
func (a *API) monthCost(ctx context.Context, userID string) (float64, error) {
	now := a.now().UTC()
	start := monthStart(now)
	envs, err := a.store.ListEnvironmentsForCost(ctx, userID, start)
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
	return roundCost(total), nil
}

// quotaJSON is a user's limits and what they use, for GET /auth/me and GET
// /users/{id}.
type quotaJSON struct {
	// The limits in force; 0 is unlimited.
	MaxEnvironments        int     `json:"max_environments"`
	MaxRunningEnvironments int     `json:"max_running_environments"`
	MonthlyBudgetUSD       float64 `json:"monthly_budget_usd"`
	// Usage, counted as the limits count it.
	Environments        int     `json:"environments"`
	RunningEnvironments int     `json:"running_environments"`
	MonthCostUSD        float64 `json:"month_cost_usd"`
	// Overrides are the admin's per-user values; null takes the server's.
	Overrides quotaOverridesJSON `json:"overrides"`
}

type quotaOverridesJSON struct {
	MaxEnvironments        *int     `json:"max_environments"`
	MaxRunningEnvironments *int     `json:"max_running_environments"`
	MonthlyBudgetUSD       *float64 `json:"monthly_budget_usd"`
}

func toQuotaOverridesJSON(q store.UserQuota) quotaOverridesJSON {
	return quotaOverridesJSON{MaxEnvironments: q.MaxEnvironments, MaxRunningEnvironments: q.MaxRunningEnvironments, MonthlyBudgetUSD: q.MonthlyBudgetUSD}
}

// quotaStatus is userID's limits and usage.
func (a *API) quotaStatus(ctx context.Context, acc store.ManagedUser) (quotaJSON, error) {
	q := a.effectiveQuotas(acc)
	c, err := a.store.CountEnvironments(ctx, acc.ID)
	if err != nil {
		return quotaJSON{}, fmt.Errorf("count environments: %w", err)
	}
	cost, err := a.monthCost(ctx, acc.ID)
	if err != nil {
		return quotaJSON{}, fmt.Errorf("month cost: %w", err)
	}
	return quotaJSON{
		MaxEnvironments:        q.MaxEnvironments,
		MaxRunningEnvironments: q.MaxRunningEnvironments,
		MonthlyBudgetUSD:       q.MonthlyBudgetUSD,
		Environments:           c.Environments,
		RunningEnvironments:    c.Active,
		MonthCostUSD:           cost,
		Overrides:              toQuotaOverridesJSON(acc.Quota),
	}, nil
}

// userQuota is userID's limits and usage.
func (a *API) userQuota(ctx context.Context, userID string) (quotaJSON, error) {
	u, err := a.store.GetManagedUser(ctx, userID)
	if err != nil {
		return quotaJSON{}, fmt.Errorf("load quota: %w", err)
	}
	return a.quotaStatus(ctx, u)
}

// createWithinQuota creates an environment if its owner's quota allows.
func (a *API) createWithinQuota(ctx context.Context, p lifecycle.CreateParams) (store.Environment, error) {
	ctx, err := a.withQuota(ctx, p.UserID, true)
	if err != nil {
		return store.Environment{}, err
	}
	env, err := a.lifecycle.Create(ctx, p)
	if err == nil {
		a.checkQuotaApplied(ctx, "create environment")
	}
	return env, err
}

// startWithinQuota starts env if its owner's quota allows. Starting one
// that already counts as running is never refused.
func (a *API) startWithinQuota(ctx context.Context, env store.Environment) (store.Environment, error) {
	ctx, err := a.withQuota(ctx, env.UserID, !slices.Contains(store.ActiveStatuses, env.Status))
	if err != nil {
		return store.Environment{}, err
	}
	after, err := a.lifecycle.Start(ctx, env.ID)
	if err == nil {
		a.checkQuotaApplied(ctx, "start environment")
	}
	return after, err
}

// withQuota checks ownerID's monthly budget (when checkBudget) and returns
// a context under which the store enforces ownerID's environment limits in
// the same transaction as the lifecycle manager's write
// (store.WithEnvironmentLimits). Quotas are the owner's:
// an admin acting on someone's environment uses that person's quota.
func (a *API) withQuota(ctx context.Context, ownerID string, checkBudget bool) (context.Context, error) {
	acc, err := a.store.GetManagedUser(ctx, ownerID)
	if err != nil {
		return nil, fmt.Errorf("load quota: %w", err)
	}
	q := a.effectiveQuotas(acc)
	if checkBudget && q.MonthlyBudgetUSD > 0 {
		// Not part of the write's transaction: cost accrues by the minute
		// anyway, so the budget is a stop for new work, not a hard cap.
		spent, err := a.monthCost(ctx, ownerID)
		if err != nil {
			return nil, fmt.Errorf("month cost: %w", err)
		}
		if spent >= q.MonthlyBudgetUSD {
			return nil, httpapi.Quota(fmt.Sprintf("the monthly budget is $%.2f and $%.2f has been spent this month (UTC); it resets on the 1st, or ask an admin to raise it",
				q.MonthlyBudgetUSD, math.Floor(spent*100)/100))
		}
	}
	return store.WithEnvironmentLimits(ctx, store.EnvironmentLimits{
		UserID:          ownerID,
		MaxEnvironments: q.MaxEnvironments,
		MaxActive:       q.MaxRunningEnvironments,
	}), nil
}

// checkQuotaApplied logs, loudly, a write that bypassed the quota check:
// the context did not reach a store.DB (a store wrapper that drops it).
func (a *API) checkQuotaApplied(ctx context.Context, action string) {
	if !store.LimitsApplied(ctx) {
		a.log.ErrorContext(ctx, "quotas are not enforced: the environment write did not reach the store with the request's context", "action", action)
	}
}

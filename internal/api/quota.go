package api

import (
	"context"

	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/store"
)

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

func toQuotaJSON(s quota.Status) quotaJSON {
	return quotaJSON{
		MaxEnvironments:        s.MaxEnvironments,
		MaxRunningEnvironments: s.MaxRunningEnvironments,
		MonthlyBudgetUSD:       s.MonthlyBudgetUSD,
		Environments:           s.Environments,
		RunningEnvironments:    s.RunningEnvironments,
		MonthCostUSD:           s.MonthCostUSD,
		Overrides:              toQuotaOverridesJSON(s.Overrides),
	}
}

// quotaStatus is acc's limits and usage.
func (a *API) quotaStatus(ctx context.Context, acc store.ManagedUser) (quotaJSON, error) {
	s, err := a.quotas.Status(ctx, acc)
	return toQuotaJSON(s), err
}

// userQuota is userID's limits and usage.
func (a *API) userQuota(ctx context.Context, userID string) (quotaJSON, error) {
	s, err := a.quotas.UserStatus(ctx, userID)
	return toQuotaJSON(s), err
}

package api

import (
	"context"

	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// toQuotaOverridesJSON renders an admin's per-user values (the sdk's
// QuotaOverrides); null takes the server's.
func toQuotaOverridesJSON(q store.UserQuota) sdk.QuotaOverrides {
	return sdk.QuotaOverrides{MaxEnvironments: q.MaxEnvironments, MaxRunningEnvironments: q.MaxRunningEnvironments, MonthlyBudgetUSD: q.MonthlyBudgetUSD}
}

// toQuotaJSON renders a user's limits and use (the sdk's Quota), for GET
// /auth/me and GET /users/{id}.
func toQuotaJSON(s quota.Status) sdk.Quota {
	return sdk.Quota{
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
func (a *API) quotaStatus(ctx context.Context, acc store.ManagedUser) (sdk.Quota, error) {
	s, err := a.quotas.Status(ctx, acc)
	return toQuotaJSON(s), err
}

// userQuota is userID's limits and usage.
func (a *API) userQuota(ctx context.Context, userID string) (sdk.Quota, error) {
	s, err := a.quotas.UserStatus(ctx, userID)
	return toQuotaJSON(s), err
}

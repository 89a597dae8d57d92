package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// UserAdminStore is the store's side of users' roles, suspension and
// quotas (the last through quota.Policy).
type UserAdminStore interface {
	ListUsers(ctx context.Context, f store.UserFilter) ([]store.ManagedUser, int, error)
	GetManagedUser(ctx context.Context, id string) (store.ManagedUser, error)
	UpdateManagedUser(ctx context.Context, id string, fn func(*store.ManagedUser) error) (before, after store.ManagedUser, err error)
	CountEnvironments(ctx context.Context, userID string) (store.EnvironmentCounts, error)
	ListEnvironmentsForCost(ctx context.Context, userID string, since time.Time) ([]store.Environment, error)
}

// Bounds of what an admin may set as a user's quota.
const (
	maxQuotaEnvironments = 10000
	maxQuotaBudgetUSD    = 1_000_000
	maxUserFilterEmail   = maxEmailLength
)

// toManagedUserJSON renders u as admins see it (the sdk's ManagedUser).
func toManagedUserJSON(u store.ManagedUser) sdk.ManagedUser {
	return sdk.ManagedUser{
		User:           toUserJSON(u.User),
		Suspended:      u.SuspendedAt != nil,
		SuspendedAt:    u.SuspendedAt,
		QuotaOverrides: toQuotaOverridesJSON(u.Quota),
	}
}

// listUsers: GET /users?email=&role=&suspended=&limit=&offset= (admins).
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.UserFilter{Email: strings.TrimSpace(q.Get("email"))}
	if len(f.Email) > maxUserFilterEmail {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("email: at most %d bytes", maxUserFilterEmail)))
		return
	}
	switch v := q.Get("role"); v {
	case "":
	case string(store.RoleAdmin), string(store.RoleMember):
		f.Role = store.Role(v)
	default:
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("role: %q is not admin or member", v)))
		return
	}
	switch v := q.Get("suspended"); v {
	case "":
	case "true", "false":
		s := v == "true"
		f.Suspended = &s
	default:
		a.writeError(w, r, httpapi.Validation("suspended: must be true or false"))
		return
	}
	var err error
	if f.Limit, err = httpapi.IntParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit); err != nil {
		a.writeError(w, r, err)
		return
	}
	if f.Offset, err = httpapi.IntParam(q.Get("offset"), "offset", 0, 0, 1<<31-1); err != nil {
		a.writeError(w, r, err)
		return
	}
	users, total, err := a.store.ListUsers(r.Context(), f)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list users: %w", err))
		return
	}
	out := make([]sdk.ManagedUser, len(users))
	for i, u := range users {
		out[i] = toManagedUserJSON(u)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": out, "total": total, "limit": f.Limit, "offset": f.Offset})
}

// getUser: GET /users/{id}, for admins and for the user themself; anyone
// else is answered as if the user did not exist.
func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	id := chi.URLParam(r, "id")
	if !auth.CanAccess(caller, id) {
		a.writeError(w, r, httpapi.NotFound("User"))
		return
	}
	u, err := a.store.GetManagedUser(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("User"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("get user: %w", err))
		return
	}
	a.writeManagedUser(w, r, u)
}

func (a *API) writeManagedUser(w http.ResponseWriter, r *http.Request, u store.ManagedUser) {
	quota, err := a.quotaStatus(r.Context(), u)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user": toManagedUserJSON(u), "quota": quota})
}

// optional is a JSON field that tells "absent" (Set false) from null.
type optional[T any] struct {
	Set, Null bool
	Value     T
}

func (o *optional[T]) UnmarshalJSON(data []byte) error {
	o.Set = true
	if string(data) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(data, &o.Value)
}

// apply sets *dst: null clears it, a value replaces it, absence keeps it.
func (o optional[T]) apply(dst **T) {
	switch {
	case !o.Set:
	case o.Null:
		*dst = nil
	default:
		v := o.Value
		*dst = &v
	}
}

type patchQuotaRequest struct {
	MaxEnvironments        optional[int]     `json:"max_environments"`
	MaxRunningEnvironments optional[int]     `json:"max_running_environments"`
	MonthlyBudgetUSD       optional[float64] `json:"monthly_budget_usd"`
}

// patchUserRequest: every field is optional; a quota field set to null
// returns the user to the server's default.
type patchUserRequest struct {
	Role      *string            `json:"role"`
	Suspended *bool              `json:"suspended"`
	Quota     *patchQuotaRequest `json:"quota"`
}

func (req patchUserRequest) validate() error {
	if req.Role == nil && req.Suspended == nil && req.Quota == nil {
		return httpapi.Validation("send at least one of role, suspended, quota")
	}
	if req.Role != nil && *req.Role != string(store.RoleAdmin) && *req.Role != string(store.RoleMember) {
		return httpapi.Validation(fmt.Sprintf("role: %q is not admin or member", *req.Role))
	}
	if q := req.Quota; q != nil {
		for _, f := range []struct {
			name string
			v    optional[int]
		}{{"quota.max_environments", q.MaxEnvironments}, {"quota.max_running_environments", q.MaxRunningEnvironments}} {
			if f.v.Set && !f.v.Null && (f.v.Value < 0 || f.v.Value > maxQuotaEnvironments) {
				return httpapi.Validation(fmt.Sprintf("%s: must be between 0 (unlimited) and %d, or null for the server's default", f.name, maxQuotaEnvironments))
			}
		}
		if b := q.MonthlyBudgetUSD; b.Set && !b.Null && (math.IsNaN(b.Value) || b.Value < 0 || b.Value > maxQuotaBudgetUSD) {
			return httpapi.Validation(fmt.Sprintf("quota.monthly_budget_usd: must be between 0 (no budget) and %d, or null for the server's default", maxQuotaBudgetUSD))
		}
	}
	return nil
}

// patchUser: PATCH /users/{id} (admins) changes a user's role, suspension
// and quota overrides. A change that would leave no active admin is
// refused with 409, whoever it is aimed at.
func (a *API) patchUser(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var req patchUserRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := req.validate(); err != nil {
		a.writeError(w, r, err)
		return
	}
	now := a.now()
	before, after, err := a.store.UpdateManagedUser(r.Context(), id, func(u *store.ManagedUser) error {
		if req.Role != nil {
			u.Role = store.Role(*req.Role)
		}
		if req.Suspended != nil {
			switch {
			case *req.Suspended && u.SuspendedAt == nil:
				u.SuspendedAt = &now
			case !*req.Suspended:
				u.SuspendedAt = nil
			}
		}
		if q := req.Quota; q != nil {
			q.MaxEnvironments.apply(&u.Quota.MaxEnvironments)
			q.MaxRunningEnvironments.apply(&u.Quota.MaxRunningEnvironments)
			q.MonthlyBudgetUSD.apply(&u.Quota.MonthlyBudgetUSD)
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.writeError(w, r, httpapi.NotFound("User"))
		return
	case errors.Is(err, store.ErrLastAdmin):
		detail := map[string]any{"reason": "last active admin"}
		if req.Role != nil {
			detail["to"] = *req.Role
		}
		action := "user.role_change"
		if req.Suspended != nil && *req.Suspended {
			action = "user.suspend"
		}
		a.audit(r, action, "user", id, false, detail)
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "This would leave no active admin",
			Details: "the installation needs at least one admin who is not suspended; promote another user first"})
		return
	case err != nil:
		a.writeError(w, r, fmt.Errorf("update user: %w", err))
		return
	}
	// What a suspended user, or one whose role changed, holds open ends
	// now: a terminal opened as an admin does not outlive the role, and
	// the user's next connection is authorized afresh.
	if before.Role != after.Role || (before.SuspendedAt == nil && after.SuspendedAt != nil) {
		if n := a.liveConns.RevokeUser(id); n > 0 {
			a.log.InfoContext(r.Context(), "ended the user's connections", "user", id, "connections", n)
		}
	}
	if before.Role != after.Role {
		a.log.InfoContext(r.Context(), "user role changed", "user", id, "from", before.Role, "to", after.Role)
		a.audit(r, "user.role_change", "user", id, true, map[string]any{"from": string(before.Role), "to": string(after.Role)})
	}
	switch {
	case before.SuspendedAt == nil && after.SuspendedAt != nil:
		a.log.InfoContext(r.Context(), "user suspended", "user", id)
		a.audit(r, "user.suspend", "user", id, true, map[string]any{"email": after.Email})
	case before.SuspendedAt != nil && after.SuspendedAt == nil:
		a.log.InfoContext(r.Context(), "user unsuspended", "user", id)
		a.audit(r, "user.unsuspend", "user", id, true, map[string]any{"email": after.Email})
	}
	if !sameQuota(before.Quota, after.Quota) {
		a.audit(r, "user.quota_change", "user", id, true, map[string]any{
			"from": toQuotaOverridesJSON(before.Quota), "to": toQuotaOverridesJSON(after.Quota),
		})
	}
	a.writeManagedUser(w, r, after)
}

// sameQuota compares overrides by value.
func sameQuota(x, y store.UserQuota) bool {
	return eqPtr(x.MaxEnvironments, y.MaxEnvironments) && eqPtr(x.MaxRunningEnvironments, y.MaxRunningEnvironments) &&
		eqPtr(x.MonthlyBudgetUSD, y.MonthlyBudgetUSD)
}

func eqPtr[T comparable](x, y *T) bool {
	if x == nil || y == nil {
		return x == y
	}
	return *x == *y
}

package sdk

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// QuotaOverrides are an admin's per-user quota values; nil takes the
// server's default.
type QuotaOverrides struct {
	MaxEnvironments        *int     `json:"max_environments"`
	MaxRunningEnvironments *int     `json:"max_running_environments"`
	MonthlyBudgetUSD       *float64 `json:"monthly_budget_usd"`
}

// Quota is a user's limits in force (0: unlimited) and what they use.
type Quota struct {
	MaxEnvironments        int            `json:"max_environments"`
	MaxRunningEnvironments int            `json:"max_running_environments"`
	MonthlyBudgetUSD       float64        `json:"monthly_budget_usd"`
	Environments           int            `json:"environments"`
	RunningEnvironments    int            `json:"running_environments"`
	MonthCostUSD           float64        `json:"month_cost_usd"`
	Overrides              QuotaOverrides `json:"overrides"`
}

// ManagedUser is a user as admins see it.
type ManagedUser struct {
	User
	Suspended      bool           `json:"suspended"`
	SuspendedAt    *time.Time     `json:"suspended_at"`
	QuotaOverrides QuotaOverrides `json:"quota_overrides"`
}

// UserFilter selects users for ListUsers. Zero values select everyone.
type UserFilter struct {
	Email     string // substring, case-insensitive
	Role      string // "admin" or "member"
	Suspended *bool
	Limit     int
	Offset    int
}

// UserList is a page of users.
type UserList struct {
	Users  []ManagedUser `json:"users"`
	Total  int           `json:"total"`
	Limit  int           `json:"limit"`
	Offset int           `json:"offset"`
}

// ListUsers lists the installation's users, oldest first (admins only).
func (c *Client) ListUsers(ctx context.Context, f UserFilter) (*UserList, error) {
	q := url.Values{}
	if f.Email != "" {
		q.Set("email", f.Email)
	}
	if f.Role != "" {
		q.Set("role", f.Role)
	}
	if f.Suspended != nil {
		q.Set("suspended", strconv.FormatBool(*f.Suspended))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out UserList
	if err := c.do(ctx, "GET", "/users", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllUsers pages through ListUsers and returns every matching user.
func (c *Client) AllUsers(ctx context.Context, f UserFilter) ([]ManagedUser, error) {
	f.Limit, f.Offset = 100, 0
	var all []ManagedUser
	for {
		page, err := c.ListUsers(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Users...)
		if len(page.Users) == 0 || len(all) >= page.Total {
			return all, nil
		}
		f.Offset += len(page.Users)
	}
}

// GetUser returns a user with their limits and usage: anyone for an admin,
// only themself for a member.
func (c *Client) GetUser(ctx context.Context, id string) (*ManagedUser, *Quota, error) {
	var out struct {
		User  ManagedUser `json:"user"`
		Quota Quota       `json:"quota"`
	}
	if err := c.do(ctx, "GET", "/users/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, nil, err
	}
	return &out.User, &out.Quota, nil
}

// UserUpdate is a change to a user; nil fields are left as they are. In
// Quota, only the keys present change, and a nil value returns that limit
// to the server's default (keys: max_environments,
// max_running_environments, monthly_budget_usd).
type UserUpdate struct {
	Role      *string        `json:"role,omitempty"`
	Suspended *bool          `json:"suspended,omitempty"`
	Quota     map[string]any `json:"quota,omitempty"`
}

// UpdateUser changes a user's role, suspension or quotas (admins only).
func (c *Client) UpdateUser(ctx context.Context, id string, u UserUpdate) (*ManagedUser, *Quota, error) {
	var out struct {
		User  ManagedUser `json:"user"`
		Quota Quota       `json:"quota"`
	}
	if err := c.do(ctx, "PATCH", "/users/"+url.PathEscape(id), nil, u, &out); err != nil {
		return nil, nil, err
	}
	return &out.User, &out.Quota, nil
}

// FindUser resolves a user id (usr_...) or an exact email address (admins
// only).
func (c *Client) FindUser(ctx context.Context, idOrEmail string) (*ManagedUser, error) {
	if strings.HasPrefix(idOrEmail, "usr_") {
		u, _, err := c.GetUser(ctx, idOrEmail)
		return u, err
	}
	users, err := c.AllUsers(ctx, UserFilter{Email: idOrEmail})
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.EqualFold(u.Email, idOrEmail) {
			return &u, nil
		}
	}
	return nil, fmt.Errorf("no user with id or email %q", idOrEmail)
}

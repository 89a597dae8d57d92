package sdk

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Invite is an admin's invitation to sign up. Its secret is in the link
// CreateInvite returns, once; the server keeps only a hash.
type Invite struct {
	ID string `json:"id"`
	// Email is the only address that may use the invite; empty: any.
	Email string `json:"email"`
	// Role is what the invited user becomes: "member" or "admin".
	Role string `json:"role"`
	// State is "pending", "used", "revoked" or "expired".
	State     string     `json:"state"`
	CreatedBy *string    `json:"created_by"` // null once that admin is gone
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at"`
	UsedBy    *string    `json:"used_by"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// CreateInviteRequest is what an admin asks an invite for; zero values
// take the defaults (any email, member, 7 days).
type CreateInviteRequest struct {
	Email         string `json:"email,omitempty"`
	Role          string `json:"role,omitempty"`
	ExpiresInDays int    `json:"expires_in_days,omitempty"`
}

// CreatedInvite is CreateInvite's answer: the invite, its secret token and
// the link to send (<access URL>/signup?invite=TOKEN). Token and URL are
// shown only this once.
type CreatedInvite struct {
	Invite Invite `json:"invite"`
	Token  string `json:"token"`
	URL    string `json:"url"`
}

// InviteList is a page of invites.
type InviteList struct {
	Invites []Invite `json:"invites"`
	Total   int      `json:"total"`
	Limit   int      `json:"limit"`
	Offset  int      `json:"offset"`
}

// CreateInvite makes an invite (admins only).
func (c *Client) CreateInvite(ctx context.Context, req CreateInviteRequest) (*CreatedInvite, error) {
	var out CreatedInvite
	if err := c.do(ctx, "POST", "/invites", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListInvites lists invites, newest first: the pending ones, or with all
// every one, used, revoked and expired included (admins only).
func (c *Client) ListInvites(ctx context.Context, all bool, limit, offset int) (*InviteList, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	var out InviteList
	if err := c.do(ctx, "GET", "/invites", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllInvites pages through ListInvites.
func (c *Client) AllInvites(ctx context.Context, all bool) ([]Invite, error) {
	var out []Invite
	for {
		page, err := c.ListInvites(ctx, all, 100, len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, page.Invites...)
		if len(page.Invites) == 0 || len(out) >= page.Total {
			return out, nil
		}
	}
}

// RevokeInvite revokes a pending (or expired) invite: its link stops
// working at once (admins only).
func (c *Client) RevokeInvite(ctx context.Context, id string) (*Invite, error) {
	var out struct {
		Invite Invite `json:"invite"`
	}
	if err := c.do(ctx, "DELETE", "/invites/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Invite, nil
}

// SignupWithInvite creates an account with an invite's token (the invite
// query parameter of its link).
func (c *Client) SignupWithInvite(ctx context.Context, email, password, name, invite string) (*User, error) {
	var out struct {
		User User `json:"user"`
	}
	body := map[string]string{"email": email, "password": password, "name": name, "invite": invite}
	if err := c.do(ctx, "POST", "/auth/signup", nil, body, &out); err != nil {
		return nil, err
	}
	return &out.User, nil
}

// SignupInfo is what the server tells anyone about signing up and in
// (GET /api/v1/auth/providers).
type SignupInfo struct {
	// Providers sign people in with OAuth.
	Providers []AuthProvider `json:"providers"`
	// Password: email and password sign-in works.
	Password bool `json:"password"`
	// SignupPolicy is "open", "invite" or "closed".
	SignupPolicy string `json:"signup_policy"`
	// SignupOpen: someone may create an account now without an invite
	// (the policy is open, or the server has no user yet).
	SignupOpen bool `json:"signup_open"`
}

// AuthProvider is an OAuth provider the server signs in with.
type AuthProvider struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	StartURL    string `json:"start_url"`
}

// SignupInfo asks the server how one signs up and in (no token needed).
func (c *Client) SignupInfo(ctx context.Context) (*SignupInfo, error) {
	var out SignupInfo
	if err := c.do(ctx, "GET", "/auth/providers", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

package sdk

import (
	"context"
	"net/url"
	"time"
)

// Session is one of the caller's sign-ins (a login, from the CLI or a
// browser); the secret is never part of it.
type Session struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"` // moves forward while the session is used
	LastSeenAt time.Time `json:"last_seen_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"` // the session this client uses
}

// Logout ends the session the client's token belongs to (the token Login
// returned); it stops working at once. An API token is not a session: the
// server answers 400 (revoke it with RevokeToken).
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, "POST", "/auth/logout", nil, nil, nil)
}

// Sessions lists the caller's live sessions, most recently used first.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	if err := c.do(ctx, "GET", "/auth/sessions", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// RevokeSession ends one of the caller's sessions at once.
func (c *Client) RevokeSession(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/auth/sessions/"+url.PathEscape(id), nil, nil, nil)
}

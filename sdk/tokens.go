package sdk

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// APIToken is a token's metadata; the secret is never part of it.
type APIToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"` // "login" for tokens older servers' logins issued
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"` // nil: never expires
	LastUsedAt *time.Time `json:"last_used_at"`
}

// CreateToken makes a named API token for the caller. expiresInDays <= 0
// takes the server's default lifetime. The returned secret is shown only
// this once: the server keeps its hash.
func (c *Client) CreateToken(ctx context.Context, name string, expiresInDays int) (secret string, tok *APIToken, err error) {
	body := map[string]any{"name": name}
	if expiresInDays > 0 {
		body["expires_in_days"] = expiresInDays
	}
	var out struct {
		Token    string   `json:"token"`
		APIToken APIToken `json:"api_token"`
	}
	if err := c.do(ctx, "POST", "/tokens", nil, body, &out); err != nil {
		return "", nil, err
	}
	return out.Token, &out.APIToken, nil
}

// Tokens lists the caller's API tokens, newest first. Logins make sessions
// (see the server's GET /api/v1/auth/sessions), not tokens.
func (c *Client) Tokens(ctx context.Context) ([]APIToken, error) {
	var out struct {
		APITokens []APIToken `json:"api_tokens"`
	}
	if err := c.do(ctx, "GET", "/tokens", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.APITokens, nil
}

// RevokeToken deletes one of the caller's tokens; it stops working at once.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	ID          int64          `json:"id"`
	CreatedAt   time.Time      `json:"created_at"`
	ActorUserID *string        `json:"actor_user_id"`
	ActorKind   string         `json:"actor_kind"` // user, agent or system
	Action      string         `json:"action"`
	ObjectType  string         `json:"object_type"`
	ObjectID    string         `json:"object_id"`
	IP          string         `json:"ip"`
	RequestID   string         `json:"request_id"`
	Detail      map[string]any `json:"detail"`
	Success     bool           `json:"success"`
}

// AuditFilter selects audit events; empty fields do not filter.
type AuditFilter struct {
	Actor, Action, ObjectType, ObjectID string
	Since, Until                        time.Time
	Limit, Offset                       int
}

// AuditEventList is a page of the audit log.
type AuditEventList struct {
	Events []AuditEvent `json:"events"`
	Total  int          `json:"total"`
}

// AuditEvents reads the audit log, newest first (admins only).
func (c *Client) AuditEvents(ctx context.Context, f AuditFilter) (*AuditEventList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "object_type": f.ObjectType, "object_id": f.ObjectID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out AuditEventList
	if err := c.do(ctx, "GET", "/audit", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

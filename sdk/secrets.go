package sdk

import (
	"context"
	"net/url"
	"time"
)

// Secret is a user secret's metadata; its value is never shown again once
// set. Every secret is an environment variable in the user's workspaces.
type Secret struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SetSecret creates or replaces one of the caller's secrets. Workspaces see
// the new value in sessions opened after their supervisor next connects.
func (c *Client) SetSecret(ctx context.Context, name, value string) (*Secret, error) {
	var out struct {
		Secret Secret `json:"secret"`
	}
	body := map[string]string{"value": value}
	if err := c.do(ctx, "PUT", "/secrets/"+url.PathEscape(name), nil, body, &out); err != nil {
		return nil, err
	}
	return &out.Secret, nil
}

// Secrets lists the caller's secrets (names and times, no values).
func (c *Client) Secrets(ctx context.Context) ([]Secret, error) {
	var out struct {
		Secrets []Secret `json:"secrets"`
	}
	if err := c.do(ctx, "GET", "/secrets", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Secrets, nil
}

// DeleteSecret removes one of the caller's secrets.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/secrets/"+url.PathEscape(name), nil, nil, nil)
}

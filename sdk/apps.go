package sdk

import (
	"context"
	"time"
)

// AppIDE names the workspace's IDE (code-server) among its apps; any other
// app is a port number ("3000"), an HTTP server on that port.
const AppIDE = "ide"

// AppTicketRequest is the body of POST /environments/{id}/app-tickets; the
// server decodes this type.
type AppTicketRequest struct {
	// App is "ide" (AppIDE) or a port number from 1 to 65535.
	App string `json:"app"`
	// Path is where the app opens, on its own origin: a path (and query)
	// starting with "/"; empty is "/".
	Path string `json:"path,omitempty"`
}

// AppTicket is the answer to POST /environments/{id}/app-tickets: a
// one-time sign-in link to the app's own origin. Opening URL (once, before
// ExpiresAt) in a browser signs that browser in to this one app and lands
// on the requested path. The URL is a credential: do not log or share it.
type AppTicket struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// OpenApp asks for a one-time sign-in link to one of the environment's
// apps (app: AppIDE or a port number) at path on its own origin.
func (c *Client) OpenApp(ctx context.Context, id, app, path string) (*AppTicket, error) {
	var out AppTicket
	if err := c.do(ctx, "POST", envPath(id, "/app-tickets"), nil, AppTicketRequest{App: app, Path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

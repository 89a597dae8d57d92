package server

import (
	"fmt"

	"dev8.dev/dev8/internal/oauth"
)

// OAuthConfig enables sign-in with OAuth providers: each one whose client
// id is set. The redirect URL to register with a provider is
// <access URL>/api/v1/auth/oauth/<github|google>/callback.
type OAuthConfig struct {
	GitHub oauth.GitHubConfig
	Google oauth.GoogleConfig
}

// providers builds the configured providers; a half-configured one (an id
// without a secret, a bad URL) is an error at start.
func (c OAuthConfig) providers() ([]oauth.Provider, error) {
	var out []oauth.Provider
	if c.GitHub.ClientID != "" || c.GitHub.ClientSecret != "" {
		p, err := oauth.NewGitHub(c.GitHub)
		if err != nil {
			return nil, fmt.Errorf("GitHub sign-in: %w", err)
		}
		out = append(out, p)
	}
	if c.Google.ClientID != "" || c.Google.ClientSecret != "" {
		p, err := oauth.NewGoogle(c.Google)
		if err != nil {
			return nil, fmt.Errorf("Google sign-in: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

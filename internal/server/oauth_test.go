package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/server"
)

// TestOAuthConfiguration: a configured provider is listed and its sign-in
// redirects there with a callback on the server's own address.
func TestOAuthConfiguration(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.OAuth.GitHub = oauth.GitHubConfig{ClientID: "cid", ClientSecret: "csecret", URL: "https://ghe.example.com"}
	})
	var providers struct {
		Providers []struct {
			Name     string `json:"name"`
			StartURL string `json:"start_url"`
		}
	}
	if code := ts.call("GET", "/api/v1/auth/providers", "", nil, &providers); code != http.StatusOK ||
		len(providers.Providers) != 1 || providers.Providers[0].Name != "github" {
		t.Fatalf("providers = %d %+v", code, providers)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(ts.url + providers.Providers[0].StartURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), "https://ghe.example.com/login/oauth/authorize?") ||
		loc.Query().Get("redirect_uri") != ts.url+"/api/v1/auth/oauth/github/callback" || loc.Query().Get("client_id") != "cid" {
		t.Fatalf("start = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if strings.Contains(loc.String(), "csecret") {
		t.Fatal("the client secret is in the authorization URL")
	}
	// Google is not configured.
	if code := ts.call("GET", "/api/v1/auth/oauth/google", "", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unconfigured provider = %d, want 404", code)
	}
}

func TestOAuthHalfConfiguredRefused(t *testing.T) {
	t.Parallel()
	_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), OAuth: server.OAuthConfig{Google: oauth.GoogleConfig{ClientID: "only-an-id"}}})
	if err == nil || !strings.Contains(err.Error(), "Google sign-in") {
		t.Fatalf("server.New = %v, want an error about Google sign-in", err)
	}
}

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

// TestOAuthFailuresArePages: a sign-in is a browser's navigation, so when
// it cannot go on (an invite that cannot be used, a callback without the
// sign-in's state) a browser gets a page saying why, and a program the
// API's JSON.
func TestOAuthFailuresArePages(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.OAuth.GitHub = oauth.GitHubConfig{ClientID: "cid", ClientSecret: "csecret", URL: "https://ghe.example.com"}
	})
	ts.user("admin@example.com")
	used := ts.dev.Invite(t, "")
	if _, err := ts.client("").SignupWithInvite(ts.ctx, "ada@example.com", "correct horse", "Ada", used); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, says string
		status     int
	}{
		{"/api/v1/auth/oauth/github?invite=" + url.QueryEscape(used), "used already", http.StatusForbidden},
		{"/api/v1/auth/oauth/github?invite=dev8inv_mistyped", "no such invite", http.StatusForbidden},
		{"/api/v1/auth/oauth/github/callback?code=c&state=s", "Sign-in state missing", http.StatusBadRequest},
		{"/api/v1/auth/oauth/gitlab", "not one of this server", http.StatusNotFound},
	} {
		resp, body := ts.get(c.path, http.Header{"Accept": {browserAccept}})
		if resp.StatusCode != c.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), c.says) ||
			!strings.Contains(string(body), `id="problem-details"`) {
			t.Errorf("browser GET %s = %d %s %q, want %d and a page saying %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.says)
		}
		resp, body = ts.get(c.path, http.Header{"Accept": {"application/json"}})
		if resp.StatusCode != c.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), `"code"`) {
			t.Errorf("program GET %s = %d %s %q, want %d JSON", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status)
		}
	}
}

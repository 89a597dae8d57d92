package oauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

func TestNewGitHubURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		cfg              GitHubConfig
		authURL, api     string
		wantErrSubstring string
	}{
		{"github.com", GitHubConfig{ClientID: "id", ClientSecret: "s"}, "https://github.com/login/oauth/authorize", "https://api.github.com", ""},
		{"enterprise", GitHubConfig{ClientID: "id", ClientSecret: "s", URL: "https://ghe.example.com/"}, "https://ghe.example.com/login/oauth/authorize", "https://ghe.example.com/api/v3", ""},
		{"explicit API", GitHubConfig{ClientID: "id", ClientSecret: "s", URL: "http://127.0.0.1:9", APIURL: "http://127.0.0.1:9/api"}, "http://127.0.0.1:9/login/oauth/authorize", "http://127.0.0.1:9/api", ""},
		{"no secret", GitHubConfig{ClientID: "id"}, "", "", "client secret"},
		{"bad URL", GitHubConfig{ClientID: "id", ClientSecret: "s", URL: "ftp://x"}, "", "", "github URL"},
	} {
		g, err := NewGitHub(tc.cfg)
		if tc.wantErrSubstring != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
				t.Errorf("%s: err = %v, want one about %q", tc.name, err, tc.wantErrSubstring)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if g.oauth.Endpoint.AuthURL != tc.authURL || g.apiURL != tc.api {
			t.Errorf("%s: auth %q api %q, want %q %q", tc.name, g.oauth.Endpoint.AuthURL, g.apiURL, tc.authURL, tc.api)
		}
	}
}

func TestGitHubAuthCodeURLUsesPKCE(t *testing.T) {
	t.Parallel()
	g, err := NewGitHub(GitHubConfig{ClientID: "id", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := g.AuthCodeURL(context.Background(), "https://dev8.example.com/cb", "st", "the-verifier")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	q := u.Query()
	if q.Get("state") != "st" || q.Get("redirect_uri") != "https://dev8.example.com/cb" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || strings.Contains(raw, "the-verifier") || !strings.Contains(q.Get("scope"), "user:email") {
		t.Fatalf("authorization URL %s", raw)
	}
}

func TestNewGoogleNeedsCredentials(t *testing.T) {
	t.Parallel()
	if _, err := NewGoogle(GoogleConfig{ClientID: "id"}); err == nil {
		t.Error("a client id without a secret was accepted")
	}
	if _, err := NewGoogle(GoogleConfig{ClientID: "id", ClientSecret: "s", Issuer: "not a url"}); err == nil {
		t.Error("a bad issuer was accepted")
	}
	// No network at construction: an unreachable issuer is only found out
	// at the first sign-in.
	if _, err := NewGoogle(GoogleConfig{ClientID: "id", ClientSecret: "s", Issuer: "http://127.0.0.1:1"}); err != nil {
		t.Errorf("construction contacted the issuer: %v", err)
	}
}

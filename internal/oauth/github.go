package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// GitHubConfig configures sign-in with GitHub or GitHub Enterprise Server.
type GitHubConfig struct {
	ClientID     string
	ClientSecret string
	// URL is GitHub's web address (default https://github.com; a GitHub
	// Enterprise Server's is https://ghe.example.com): the authorize and
	// token endpoints are under it.
	URL string
	// APIURL is the REST API (default https://api.github.com for
	// github.com, URL + /api/v3 otherwise).
	APIURL string
	// HTTPClient makes the calls (default: one with a timeout).
	HTTPClient *http.Client
}

// GitHub signs people in with GitHub. Only the person's primary email, and
// only if GitHub has verified it, is used.
type GitHub struct {
	oauth  oauth2.Config
	apiURL string
	client *http.Client
}

// NewGitHub checks cfg and returns the provider.
func NewGitHub(cfg GitHubConfig) (*GitHub, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("github: a client id and a client secret are both required")
	}
	web, err := baseURL(cfg.URL, "https://github.com")
	if err != nil {
		return nil, fmt.Errorf("github URL: %w", err)
	}
	apiDefault := "https://api.github.com"
	if web != "https://github.com" {
		apiDefault = web + "/api/v3"
	}
	api, err := baseURL(cfg.APIURL, apiDefault)
	if err != nil {
		return nil, fmt.Errorf("github API URL: %w", err)
	}
	return &GitHub{
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token"},
			// user:email reads the addresses and whether they are verified.
			Scopes: []string{"read:user", "user:email"},
		},
		apiURL: api,
		client: cfg.HTTPClient,
	}, nil
}

// baseURL checks an http(s) URL and drops a trailing slash; empty is def.
func baseURL(v, def string) (string, error) {
	if v == "" {
		return def, nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want an http(s) URL such as %s", v, def)
	}
	return strings.TrimRight(v, "/"), nil
}

func (g *GitHub) Name() string        { return "github" }
func (g *GitHub) DisplayName() string { return "GitHub" }

func (g *GitHub) config(redirectURL string) *oauth2.Config {
	c := g.oauth
	c.RedirectURL = redirectURL
	return &c
}

func (g *GitHub) AuthCodeURL(_ context.Context, redirectURL, state, verifier string) (string, error) {
	return g.config(redirectURL).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

func (g *GitHub) Identify(ctx context.Context, redirectURL, code, verifier string) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ctx = withHTTPClient(ctx, g.client)
	cfg := g.config(redirectURL)
	tok, err := exchange(ctx, cfg, code, verifier)
	if err != nil {
		return Identity{}, fmt.Errorf("github: %w", err)
	}
	client := cfg.Client(ctx, tok)
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := g.get(ctx, client, "/user", &user); err != nil {
		return Identity{}, err
	}
	if user.ID == 0 {
		return Identity{}, errors.New("github: /user answered without an id")
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := g.get(ctx, client, "/user/emails", &emails); err != nil {
		return Identity{}, err
	}
	id := Identity{Provider: g.Name(), Subject: strconv.FormatInt(user.ID, 10), Name: user.Name}
	if id.Name == "" {
		id.Name = user.Login
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			id.Email = strings.ToLower(e.Email)
		}
	}
	if id.Email == "" {
		return Identity{}, fmt.Errorf("github: %w", ErrNoVerifiedEmail)
	}
	return id, nil
}

// get reads a JSON answer from the REST API.
func (g *GitHub) get(ctx context.Context, client *http.Client, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.apiURL+path, nil)
	if err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("github %s: HTTP %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("github %s: %w", path, err)
	}
	return nil
}

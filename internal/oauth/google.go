package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// GoogleConfig configures sign-in with Google (or another OpenID Connect
// issuer that behaves like it).
type GoogleConfig struct {
	ClientID     string
	ClientSecret string
	// Issuer is the OpenID Connect issuer (default
	// https://accounts.google.com); its discovery document names the
	// endpoints and keys.
	Issuer string
	// HTTPClient makes the calls (default: one with a timeout).
	HTTPClient *http.Client
}

// Google signs people in with Google through OpenID Connect: the identity is
// the ID token's, after its signature, issuer, audience and expiry are
// verified, and its email only if email_verified.
type Google struct {
	cfg GoogleConfig

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use
}

// NewGoogle checks cfg and returns the provider. The issuer is not contacted
// until the first sign-in, so the server starts while it is unreachable.
func NewGoogle(cfg GoogleConfig) (*Google, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("google: a client id and a client secret are both required")
	}
	issuer, err := baseURL(cfg.Issuer, "https://accounts.google.com")
	if err != nil {
		return nil, fmt.Errorf("google issuer: %w", err)
	}
	cfg.Issuer = issuer
	return &Google{cfg: cfg}, nil
}

func (g *Google) Name() string        { return "google" }
func (g *Google) DisplayName() string { return "Google" }

// discover returns the issuer's metadata, fetching it on first use (and
// again after a failure).
func (g *Google) discover(ctx context.Context) (*oidc.Provider, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.provider != nil {
		return g.provider, nil
	}
	// The provider keeps the context's HTTP client for fetching keys later;
	// the request's cancellation must not reach those.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, httpClient(g.cfg.HTTPClient)), g.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("google: discover %s: %w", g.cfg.Issuer, err)
	}
	g.provider = p
	return p, nil
}

func (g *Google) config(p *oidc.Provider, redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     g.cfg.ClientID,
		ClientSecret: g.cfg.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  redirectURL,
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

func (g *Google) AuthCodeURL(ctx context.Context, redirectURL, state, verifier string) (string, error) {
	p, err := g.discover(ctx)
	if err != nil {
		return "", err
	}
	return g.config(p, redirectURL).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

func (g *Google) Identify(ctx context.Context, redirectURL, code, verifier string) (Identity, error) {
	p, err := g.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// The ID token's keys are fetched with this client too.
	ctx = oidc.ClientContext(ctx, httpClient(g.cfg.HTTPClient))
	tok, err := exchange(ctx, g.config(p, redirectURL), code, verifier)
	if err != nil {
		return Identity{}, fmt.Errorf("google: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, errors.New("google: the token answer has no id_token")
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: g.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("google: verify ID token: %w", err)
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("google: ID token claims: %w", err)
	}
	// Some issuers send the boolean as a string.
	verified := claims.EmailVerified == true || claims.EmailVerified == "true"
	if claims.Email == "" || !verified {
		return Identity{}, fmt.Errorf("google: %w", ErrNoVerifiedEmail)
	}
	return Identity{Provider: g.Name(), Subject: idt.Subject, Email: strings.ToLower(claims.Email), Name: claims.Name}, nil
}

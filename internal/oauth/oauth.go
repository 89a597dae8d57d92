// Package oauth signs people in with an OAuth provider (GitHub, or Google
// through OpenID Connect): the authorization URL, with PKCE, and the code
// exchange that ends in a verified identity. It keeps no state: between the
// two steps the browser carries it, sealed by a StateSigner (state.go).
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// Identity is who signed in, as the provider vouches.
type Identity struct {
	Provider string
	// Subject is the provider's stable id for the person (not the login
	// name or email, which can change).
	Subject string
	// Email is the provider's verified address for the person, lower-case
	// as the provider gave it; empty when there is none.
	Email string
	Name  string
}

// Provider is one sign-in provider.
type Provider interface {
	// Name is the provider's short name in URLs and the accounts table
	// ("github", "google").
	Name() string
	// DisplayName is what a sign-in button says ("GitHub").
	DisplayName() string
	// AuthCodeURL is where to send the browser to sign in; the provider
	// sends it back to redirectURL with state and a code. verifier is the
	// PKCE code verifier (see oauth2.GenerateVerifier); only its S256
	// challenge leaves this server.
	AuthCodeURL(ctx context.Context, redirectURL, state, verifier string) (string, error)
	// Identify exchanges the code (with the verifier) and returns who it
	// belongs to. Errors wrap ErrRefused when the provider refused the code,
	// and ErrNoVerifiedEmail when the person has no verified email there.
	Identify(ctx context.Context, redirectURL, code, verifier string) (Identity, error)
}

var (
	// ErrRefused: the provider did not accept the code (expired, used, or
	// the PKCE verifier does not match).
	ErrRefused = errors.New("the provider refused the sign-in")
	// ErrNoVerifiedEmail: the provider vouches for no email address of the
	// person, so no Dev8 account can be matched or made.
	ErrNoVerifiedEmail = errors.New("the provider has no verified email address for this account")
)

// requestTimeout bounds each call to a provider.
const requestTimeout = 15 * time.Second

// exchange trades code for a token, mapping a refusal to ErrRefused. The
// error never includes the code or a token.
func exchange(ctx context.Context, cfg *oauth2.Config, code, verifier string) (*oauth2.Token, error) {
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// ErrorCode is the provider's ("invalid_grant"); the body could
			// echo what was sent, so it is left out.
			return nil, fmt.Errorf("%w: %s (HTTP %d)", ErrRefused, re.ErrorCode, statusOf(re.Response))
		}
		return nil, fmt.Errorf("exchange code: %w", err)
	}
	return tok, nil
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// withHTTPClient makes oauth2 use client (default: one with a timeout) for
// its requests.
func withHTTPClient(ctx context.Context, client *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, httpClient(client))
}

func httpClient(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: requestTimeout}
	}
	return c
}

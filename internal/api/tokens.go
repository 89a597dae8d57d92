package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

const (
	// maxTokenNameLength bounds an API token's name (in characters).
	maxTokenNameLength = 64
	// loginTokenName names every token POST /auth/login issues. It is
	// reserved: those tokens may share it, named tokens may not.
	loginTokenName = "login"
)

const day = 24 * time.Hour

// toTokenJSON renders t as the API shows it (the sdk's APIToken).
func toTokenJSON(t store.APIToken) sdk.APIToken {
	j := sdk.APIToken{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt}
	if !t.ExpiresAt.IsZero() {
		exp := t.ExpiresAt
		j.ExpiresAt = &exp
	}
	return j
}

type createTokenRequest struct {
	Name          string `json:"name"`
	ExpiresInDays *int   `json:"expires_in_days"`
}

// validateTokenName checks a (trimmed) token name.
func validateTokenName(name string) error {
	switch {
	case name == "":
		return httpapi.Validation("name: is required")
	case name == loginTokenName:
		return httpapi.Validation(`name: "login" is reserved for the tokens login issues; pick another name`)
	}
	return httpapi.CheckLabel("name", name, maxTokenNameLength)
}

// createToken issues a named API token for the caller. The secret is in
// this answer only: the store keeps its hash.
func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	var req createTokenRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := validateTokenName(req.Name); err != nil {
		a.writeError(w, r, err)
		return
	}
	lifetime := a.tokenDefaultLifetime
	maxDays := int(a.tokenMaxLifetime / day)
	if req.ExpiresInDays != nil {
		if d := *req.ExpiresInDays; d < 1 || d > maxDays {
			a.writeError(w, r, httpapi.Validation(fmt.Sprintf("expires_in_days: must be between 1 and %d", maxDays)))
			return
		}
		lifetime = time.Duration(*req.ExpiresInDays) * day
	}
	secret, hash, err := auth.NewToken()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	tok, err := a.store.CreateAPIToken(r.Context(), store.APIToken{
		UserID:    caller.ID,
		Name:      req.Name,
		Hash:      hash,
		ExpiresAt: a.now().Add(lifetime),
	})
	if errors.Is(err, store.ErrConflict) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "Token name already in use",
			Details: fmt.Sprintf("you already have a token named %q; pick another name or revoke that one", req.Name)})
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create token: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "api token created", "user", caller.ID, "token", tok.ID)
	a.audit(r, "token.create", "token", tok.ID, true, map[string]any{"name": tok.Name, "expires_at": tok.ExpiresAt})
	w.Header().Set("Location", "/api/v1/tokens")
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"token": secret, "api_token": toTokenJSON(tok)})
}

// listTokens lists the caller's tokens (login tokens included): metadata
// only, never a secret or a hash.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	toks, err := a.store.ListAPITokens(r.Context(), caller.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list tokens: %w", err))
		return
	}
	out := make([]sdk.APIToken, len(toks))
	for i, t := range toks {
		out[i] = toTokenJSON(t)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"api_tokens": out})
}

// deleteToken revokes one of the caller's tokens, effective at once (the
// token in use included). Another user's token is answered like a missing
// one.
func (a *API) deleteToken(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	id := chi.URLParam(r, "id")
	err := a.store.DeleteAPIToken(r.Context(), caller.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Token"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("revoke token: %w", err))
		return
	}
	ended := a.liveConns.RevokeCredential(liveconn.Token(id))
	a.log.InfoContext(r.Context(), "api token revoked", "user", caller.ID, "token", id, "connections_ended", ended)
	a.audit(r, "token.revoke", "token", id, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Token revoked", "id": id})
}

package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

type putSecretRequest struct {
	Value *string `json:"value"`
}

// validateSecretName checks a secret's name (from the path).
func validateSecretName(name string) error {
	if !secretNamePattern.MatchString(name) {
		return httpapi.Validation("name: must look like an environment variable: a letter or _, then letters, digits or _, at most 64 characters")
	}
	upper := strings.ToUpper(name)
	if strings.HasPrefix(upper, "DEV8_") {
		return httpapi.Validation("name: names starting with DEV8_ are reserved for the platform")
	}
	if why, ok := reservedSecretNames[upper]; ok {
		return httpapi.Validation(fmt.Sprintf("name: %s is set by the platform; %s", name, why))
	}
	return nil
}

func validateSecretValue(v *string) error {
	switch {
	case v == nil || *v == "":
		return httpapi.Validation("value: is required")
	case len(*v) > maxSecretValueBytes:
		return httpapi.Validation(fmt.Sprintf("value: at most %d bytes", maxSecretValueBytes))
	case strings.IndexByte(*v, 0) >= 0:
		return httpapi.Validation("value: must not contain NUL bytes (an environment variable cannot hold them)")
	}
	return nil
}

// putSecret stores a secret's value, encrypted. The answer is its metadata:
// the value is never shown again.
func (a *API) putSecret(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, box, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	if err := validateSecretName(name); err != nil {
		a.writeError(w, r, err)
		return
	}
	var req putSecretRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := validateSecretValue(req.Value); err != nil {
		a.writeError(w, r, err)
		return
	}
	existing, err := st.ListUserSecrets(r.Context(), caller.ID, false)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list secrets: %w", err))
		return
	}
	if len(existing) >= maxSecretsPerUser && !hasSecret(existing, name) {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("you have %d secrets, the most there may be; delete one first", len(existing))))
		return
	}
	ct := box.Seal([]byte(*req.Value), userSecretAAD(caller.ID, name))
	s, created, err := st.PutUserSecret(r.Context(), caller.ID, name, ct)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("store secret: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "user secret stored", "user", caller.ID, "name", name, "created", created)
	a.audit(r, "secret.put", "secret", name, true, map[string]any{"created": created})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, map[string]any{"secret": sdk.Secret{Name: s.Name, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}})
}

func hasSecret(list []store.UserSecret, name string) bool {
	for _, s := range list {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	list, err := st.ListUserSecrets(r.Context(), caller.ID, false)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list secrets: %w", err))
		return
	}
	out := make([]sdk.Secret, len(list))
	for i, s := range list {
		out[i] = sdk.Secret{Name: s.Name, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	err = st.DeleteUserSecret(r.Context(), caller.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Secret"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("delete secret: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "user secret deleted", "user", caller.ID, "name", name)
	a.audit(r, "secret.delete", "secret", name, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Secret deleted", "name": name})
}

// ---- git identity and GitHub token ----

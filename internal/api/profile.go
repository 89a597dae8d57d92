package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/store"
)

// ProfileStore is the store's side of a user changing their own profile.
type ProfileStore interface {
	UpdateUserName(ctx context.Context, id, name string) (store.User, error)
	SetDefaultAutoStop(ctx context.Context, id string, minutes *int) (store.User, error)
	// ChangePassword replaces the hash and revokes every session of the
	// user but keepSessionID, in one transaction.
	ChangePassword(ctx context.Context, userID, hash, keepSessionID string) (revoked int64, error error)
}

var (
	errWrongPassword = &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Current password is wrong",
		Details: "type the password you sign in with"}
	errNoPassword = &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "This account has no password",
		Details: "it signs in with an identity provider; keep using it"}
)

type patchMeRequest struct {
	Name *string `json:"name"`
	// DefaultAutoStopMinutes: a number sets it, null goes back to the
	// server's default, absent keeps it.
	DefaultAutoStopMinutes optional[int] `json:"default_auto_stop_minutes"`
}

// patchMe: PATCH /auth/me changes the caller's own name and default
// auto-stop. The email is the sign-in identity and is not changed here.
func (a *API) patchMe(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	var req patchMeRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Name == nil && !req.DefaultAutoStopMinutes.Set {
		a.writeError(w, r, httpapi.Validation("send at least one of name, default_auto_stop_minutes"))
		return
	}
	var name string
	if req.Name != nil {
		name = strings.TrimSpace(*req.Name)
		if err := httpapi.CheckLabel("name", name, maxNameLength); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	autoStop := caller.DefaultAutoStopMinutes
	req.DefaultAutoStopMinutes.apply(&autoStop)
	if autoStop != nil && (*autoStop < 0 || *autoStop > lifecycle.MaxAutoStopMinutes) {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("default_auto_stop_minutes: from 0 (never) to %d, or null for the server's default", lifecycle.MaxAutoStopMinutes)))
		return
	}
	user := caller
	var err error
	if req.Name != nil {
		if user, err = a.store.UpdateUserName(r.Context(), caller.ID, name); err != nil {
			a.writeError(w, r, fmt.Errorf("update name: %w", err))
			return
		}
		if user.Name != caller.Name {
			a.audit(r, "user.profile_update", "user", caller.ID, true, map[string]any{"field": "name"})
		}
	}
	if req.DefaultAutoStopMinutes.Set {
		if user, err = a.store.SetDefaultAutoStop(r.Context(), caller.ID, autoStop); err != nil {
			a.writeError(w, r, fmt.Errorf("set default auto-stop: %w", err))
			return
		}
		a.audit(r, "user.profile_update", "user", caller.ID, true, map[string]any{"field": "default_auto_stop_minutes"})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user": toUserJSON(user)})
}

type changePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// changePassword: POST /auth/password sets a new password for the caller,
// who must prove the current one (a stolen session alone cannot take the
// account over). Wrong guesses count against the same lockout as failed
// logins. Every other session of the caller is revoked; the one making the
// request stays signed in. API tokens are not touched.
func (a *API) changePassword(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	var req changePasswordRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.CurrentPassword == "" {
		a.writeError(w, r, httpapi.Validation("current_password: is required"))
		return
	}
	if n := utf8.RuneCountInString(req.NewPassword); n < auth.MinPasswordLength || len(req.NewPassword) > auth.MaxPasswordLength {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("new_password: must be at least %d characters and at most %d bytes", auth.MinPasswordLength, auth.MaxPasswordLength)))
		return
	}
	if caller.PasswordHash == "" {
		a.audit(r, "user.password_change", "user", caller.ID, false, map[string]any{"reason": "no password"})
		a.writeError(w, r, errNoPassword)
		return
	}
	lock, locked, err := a.throttles.LoginLocked(r, caller.Email)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if locked {
		if lock.New {
			a.audit(r, "user.password_change", "user", caller.ID, false, throttledDetail(caller.Email, lock))
		}
		a.writeError(w, r, httpmw.LoginThrottled(lock.Retry))
		return
	}
	if !a.passwords.Check(caller.PasswordHash, req.CurrentPassword) {
		a.throttles.LoginFailed(r, caller.Email)
		a.audit(r, "user.password_change", "user", caller.ID, false, map[string]any{"reason": "wrong current password"})
		a.writeError(w, r, errWrongPassword)
		return
	}
	a.throttles.LoginSucceeded(r, caller.Email)
	hash, err := a.passwords.Hash(req.NewPassword)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	keep := ""
	if s, ok := auth.SessionFrom(r.Context()); ok {
		keep = s.ID
	}
	revoked, err := a.store.ChangePassword(r.Context(), caller.ID, hash, keep)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("User"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("change password: %w", err))
		return
	}
	// The other sessions' connections end with them; API tokens' stay, as
	// the tokens do.
	ended := a.liveConns.Revoke(func(h liveconn.Holder) bool {
		return h.UserID == caller.ID && liveconn.IsSession(h.Credential) && h.Credential != liveconn.Session(keep)
	})
	a.log.InfoContext(r.Context(), "password changed", "user", caller.ID, "sessions_revoked", revoked, "connections_ended", ended)
	a.audit(r, "user.password_change", "user", caller.ID, true, map[string]any{"sessions_revoked": revoked})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"message": "Password changed", "sessions_revoked": revoked})
}

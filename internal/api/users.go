package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

const (
	maxEmailLength = 254
	maxNameLength  = 100
)

// toUserJSON renders u as the API shows it (the sdk's User).
func toUserJSON(u store.User) sdk.User {
	return sdk.User{ID: u.ID, Email: u.Email, Name: u.Name, Role: string(u.Role), DefaultAutoStopMinutes: u.DefaultAutoStopMinutes, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type signupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	// Invite is an invite's token (the invite parameter of its link):
	// how people sign up when the policy is invite or closed.
	Invite string `json:"invite"`
}

func validateEmail(email string) error {
	if email == "" {
		return httpapi.Validation("email: is required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > maxEmailLength || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return httpapi.Validation("email: must be an address such as ada@example.com")
	}
	return nil
}

// signup and login, like every route that changes state, are refused to
// another site's page before they run (httpmw.Auth.RefuseCrossOrigin): a
// login from there would sign the visitor in as whoever that site likes
// (login CSRF), a signup would make accounts in the visitor's name.
func (a *API) signup(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	req.Email = strings.ToLower(strings.TrimSpace(req.Email))
	req.Name = strings.TrimSpace(req.Name)
	if err := validateEmail(req.Email); err != nil {
		a.writeError(w, r, err)
		return
	}
	if n := utf8.RuneCountInString(req.Password); n < auth.MinPasswordLength || len(req.Password) > auth.MaxPasswordLength {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("password: must be at least %d characters and at most %d bytes", auth.MinPasswordLength, auth.MaxPasswordLength)))
		return
	}
	if err := httpapi.CheckLabel("name", req.Name, maxNameLength); err != nil {
		a.writeError(w, r, err)
		return
	}
	// The signup policy (signup.go) answers before bcrypt runs.
	if err := a.admitSignup(r, req.Email, req.Invite); err != nil {
		a.writeError(w, r, err)
		return
	}
	hash, err := a.passwords.Hash(req.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	user, err := a.createUser(r, store.User{Email: req.Email, Name: req.Name, PasswordHash: hash}, req.Invite, false)
	if errors.Is(err, store.ErrConflict) {
		a.auditAs(r, "", "auth.signup", "user", "", false, map[string]any{"email": req.Email, "reason": "email already registered"})
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "Email already registered", Details: "log in instead, or use another address"})
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create user: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "user signed up", "user", user.ID, "role", user.Role)
	a.auditAs(r, user.ID, "auth.signup", "user", user.ID, true, map[string]any{"email": user.Email, "role": string(user.Role)})
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"user": toUserJSON(user)})
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Email == "" || req.Password == "" {
		a.writeError(w, r, httpapi.Validation("email and password are required"))
		return
	}
	lock, locked, err := a.throttles.LoginLocked(r, req.Email)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if locked {
		// One line and one audit row per lock, not per refused attempt:
		// an attacker's flood must not grow the log without bound.
		if lock.New {
			a.log.InfoContext(r.Context(), "login throttled", "remote", r.RemoteAddr, "limits", lock.Limits, "retry_after", lock.Retry)
			a.auditAs(r, "", "auth.login", "user", "", false, throttledDetail(loginEmail(req.Email), lock))
		}
		a.writeError(w, r, httpmw.LoginThrottled(lock.Retry))
		return
	}
	user, err := a.store.GetUserByEmail(r.Context(), strings.ToLower(strings.TrimSpace(req.Email)))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, fmt.Errorf("look up user: %w", err))
		return
	}
	// Check runs bcrypt even for an unknown email (empty hash), so
	// the answer takes as long either way.
	if !a.passwords.Check(user.PasswordHash, req.Password) {
		a.log.InfoContext(r.Context(), "login failed", "remote", r.RemoteAddr)
		a.throttles.LoginFailed(r, req.Email)
		// The email tried is recorded, never the password. The object is
		// the account when the email names one.
		a.auditAs(r, "", "auth.login", "user", user.ID, false, map[string]any{"email": loginEmail(req.Email), "reason": "bad credentials"})
		a.writeError(w, r, auth.ErrBadCredentials)
		return
	}
	a.throttles.LoginSucceeded(r, req.Email)
	if user.SuspendedAt != nil {
		// The password was right, so saying why is no leak.
		a.auditAs(r, user.ID, "auth.login", "user", user.ID, false, map[string]any{"email": user.Email, "reason": "suspended"})
		a.writeError(w, r, httpmw.ErrSuspended)
		return
	}
	// A login is a session: the browser gets it as cookies, the CLI keeps
	// the secret from the body and sends it as a bearer token.
	secret, sess, err := a.startSession(w, r, user)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user logged in", "user", user.ID, "session", sess.ID)
	a.auditAs(r, user.ID, "auth.login", "user", user.ID, true, map[string]any{"email": user.Email, "session_id": sess.ID})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"token":      secret,
		"expires_at": sess.ExpiresAt,
		"user":       toUserJSON(user),
		"session_id": sess.ID,
		"csrf_token": a.cookies.CSRFToken(sess.ID),
	})
}

// throttledDetail is the audit detail of the first attempt a login lock
// refused: the lock's length and the limits that hold it. Later attempts
// during the same lock are refused without a row.
func throttledDetail(email string, lock httpmw.LoginLockout) map[string]any {
	return map[string]any{"email": email, "reason": "throttled", "limits": lock.Limits,
		"locked_for_seconds": int(math.Ceil(lock.Retry.Seconds()))}
}

// loginEmail is the attempted email as the audit log keeps it: normalised
// like the lookup, and bounded so a huge value cannot bloat the log.
func loginEmail(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > maxEmailLength {
		email = email[:maxEmailLength]
	}
	return email
}

type accountJSON struct {
	Provider    string     `json:"provider"`
	Email       string     `json:"email"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

// me is the caller, with the OAuth accounts linked to them. A caller
// authenticated by a session also gets the session's id and CSRF token (a
// page that was reloaded asks here for the token).
func (a *API) me(w http.ResponseWriter, r *http.Request) {
	user := mustUser(r.Context())
	accts, err := a.store.ListAccounts(r.Context(), user.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list accounts: %w", err))
		return
	}
	out := map[string]any{"user": toUserJSON(user)}
	linked := make([]accountJSON, len(accts))
	for i, ac := range accts {
		linked[i] = accountJSON{Provider: ac.Provider, Email: ac.Email, CreatedAt: ac.CreatedAt, LastLoginAt: ac.LastLoginAt}
	}
	out["accounts"] = linked
	// The caller's limits and usage (quota.go), for the dashboard.
	if out["quota"], err = a.userQuota(r.Context(), user.ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	if s, ok := auth.SessionFrom(r.Context()); ok {
		out["session_id"] = s.ID
		out["csrf_token"] = a.cookies.CSRFToken(s.ID)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

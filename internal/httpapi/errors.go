// Package httpapi is how Dev8's HTTP handlers answer: the error type, the
// one place where errors become responses ({"error","details","code"} with
// the right status), and JSON decoding and encoding. It needs no *api.API,
// so the API, the gateway and the middleware all answer the same way.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// Error codes, stable for clients to branch on. The sdk defines them (one
// definition, shared with every client); these are the same constants.
const (
	CodeInvalidJSON        = sdk.CodeInvalidJSON
	CodeValidation         = sdk.CodeValidation
	CodeUnauthorized       = sdk.CodeUnauthorized
	CodeForbidden          = sdk.CodeForbidden
	CodeNotFound           = sdk.CodeNotFound
	CodeMethodNotAllowed   = sdk.CodeMethodNotAllowed
	CodeConflict           = sdk.CodeConflict
	CodeInvalidState       = sdk.CodeInvalidState
	CodeRuntimeUnavailable = sdk.CodeRuntimeUnavailable
	CodeRuntimeAdminOnly   = sdk.CodeRuntimeAdminOnly
	CodeTooLarge           = sdk.CodeTooLarge
	CodeUnsupportedMedia   = sdk.CodeUnsupportedMedia
	CodeInternal           = sdk.CodeInternal
	CodeNotReady           = sdk.CodeNotReady
	CodeMisdirected        = sdk.CodeMisdirected
	CodeUnavailable        = sdk.CodeUnavailable
	CodeRateLimited        = sdk.CodeRateLimited
	CodeTooManyStreams     = sdk.CodeTooManyStreams
	CodeQuotaExceeded      = sdk.CodeQuotaExceeded
	CodeCSRFFailed         = sdk.CodeCSRFFailed
	CodeOAuthFailed        = sdk.CodeOAuthFailed
	CodeSignupClosed       = sdk.CodeSignupClosed
	CodeInviteRequired     = sdk.CodeInviteRequired
	CodeInviteInvalid      = sdk.CodeInviteInvalid
)

// Error is an error with its HTTP answer. Handlers return other errors too;
// WriteError maps the known ones and hides the rest behind a 500.
type Error struct {
	Status  int
	Code    string
	Message string
	Details string
	// RetryAfter, when set, is sent as Retry-After (whole seconds).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Message
	}
	return e.Message + ": " + e.Details
}

// NotFound is the 404 for what ("Environment", "Snapshot", ...). Another
// user's object gets the same answer as one that does not exist.
func NotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found"}
}

// Validation is the 400 for a request that breaks a rule.
func Validation(details string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Message: "Invalid request", Details: details}
}

// Quota is the 403 for a request that would take its user past a quota.
func Quota(details string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeQuotaExceeded, Message: "Quota exceeded", Details: details}
}

// RateLimited is the 429 every throttle answers.
func RateLimited(retry time.Duration, details string) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "Too many requests", Details: details, RetryAfter: retry}
}

// ToError is the one place where errors become HTTP answers.
func ToError(err error) *Error {
	var (
		apiErr   *Error
		valErr   *lifecycle.ValidationError
		stateErr *lifecycle.StateError
		nameErr  *lifecycle.NameTakenError
		rtErr    *lifecycle.RuntimeUnavailableError
		tplErr   *lifecycle.TemplateUnavailableError
		adminErr *lifecycle.AdminOnlyError
		placeErr *lifecycle.PlacementUnsupportedError
		quotaErr *store.QuotaExceededError
		spentErr *quota.BudgetExceededError
		invErr   *signup.InviteError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &valErr):
		return Validation(valErr.Error())
	case errors.As(err, &stateErr):
		return &Error{Status: http.StatusConflict, Code: CodeInvalidState, Message: "Environment is not in a state that allows this", Details: stateErr.Error()}
	case errors.As(err, &rtErr) && rtErr.Create:
		// A runtime the server does not offer: the request, not the
		// server's state, is what is wrong.
		return Validation(rtErr.Error())
	case errors.As(err, &rtErr):
		return &Error{Status: http.StatusConflict, Code: CodeRuntimeUnavailable, Message: "Runtime not available", Details: rtErr.Error()}
	case errors.As(err, &adminErr):
		return &Error{Status: http.StatusForbidden, Code: CodeRuntimeAdminOnly, Message: "Only admins may run workspaces on this runtime", Details: adminErr.Error()}
	case errors.As(err, &placeErr):
		return &Error{Status: http.StatusConflict, Code: CodeRuntimeUnavailable, Message: "Instance type not available on this runtime", Details: placeErr.Error()}
	case errors.As(err, &tplErr):
		return &Error{Status: http.StatusConflict, Code: CodeRuntimeUnavailable, Message: "Template not available on this runtime", Details: tplErr.Error()}
	case errors.As(err, &quotaErr):
		return Quota(fmt.Sprintf("the limit is %d %s and %d are in use; stop or delete one, or ask an admin to raise the limit", quotaErr.Max, quotaErr.Limit, quotaErr.InUse))
	case errors.As(err, &spentErr):
		return Quota(fmt.Sprintf("the monthly budget is $%.2f and $%.2f has been spent this month (UTC); it resets on the 1st, or ask an admin to raise it",
			spentErr.BudgetUSD, math.Floor(spentErr.SpentUSD*100)/100))
	case errors.Is(err, signup.ErrSignupClosed):
		return &Error{Status: http.StatusForbidden, Code: CodeSignupClosed, Message: "Signup is closed",
			Details: "accounts on this server are made by invitation: ask an admin for an invite link"}
	case errors.Is(err, signup.ErrInviteRequired):
		return &Error{Status: http.StatusForbidden, Code: CodeInviteRequired, Message: "An invite is required",
			Details: "this server signs people up by invitation: ask an admin for an invite link"}
	case errors.As(err, &invErr):
		return &Error{Status: http.StatusForbidden, Code: CodeInviteInvalid, Message: "Invite cannot be used", Details: invErr.Error()}
	case errors.As(err, &nameErr):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "Name already in use", Details: nameErr.Error() + "; pick another name or delete that one"}
	case errors.Is(err, store.ErrNotFound):
		return NotFound("Resource")
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "Already exists"}
	case errors.Is(err, auth.ErrBadCredentials):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "Invalid email or password"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "Internal server error", Details: "the error was logged; see the server log"}
}

// WriteError answers err: known errors with their status, anything else as
// a 500 whose cause goes to log (never to the client).
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	e := ToError(err)
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dev8"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", RetryAfterSeconds(e.RetryAfter))
	}
	reqID := middleware.GetReqID(r.Context())
	if e.Status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		log.DebugContext(r.Context(), "request rejected", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	WriteJSON(w, e.Status, sdk.ErrorResponse{Error: e.Message, Details: e.Details, Code: e.Code})
}

// WriteJSON answers v with status; responses are never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// RetryAfterSeconds rounds up: a client that waits as told must succeed.
func RetryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

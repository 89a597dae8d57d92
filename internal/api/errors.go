package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
)

// Error codes, stable for clients to branch on.
const (
	CodeInvalidJSON      = "INVALID_JSON"
	CodeValidation       = "VALIDATION_ERROR"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeConflict         = "CONFLICT"
	CodeInvalidState     = "INVALID_STATE"
	CodeTooLarge         = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia = "UNSUPPORTED_MEDIA_TYPE"
	CodeInternal         = "INTERNAL_ERROR"
	CodeNotReady         = "NOT_READY"
	CodeUnavailable      = "WORKSPACE_UNAVAILABLE"
	CodeRateLimited      = "RATE_LIMITED"
	// CodeQuotaExceeded: the request would take its user past a quota
	// (environments, running environments, monthly budget).
	CodeQuotaExceeded = "QUOTA_EXCEEDED"
	// CodeCSRFFailed: a request authenticated by the session cookie that
	// changes state came without the session's CSRF token, or from another
	// origin.
	CodeCSRFFailed = "CSRF_FAILED"
	// CodeOAuthFailed: signing in with an OAuth provider did not work out
	// (the provider refused the code, or gave no verified email).
	CodeOAuthFailed = "OAUTH_FAILED"
)

// Error is an error with its HTTP answer. Handlers return other errors too;
// writeError maps the known ones and hides the rest behind a 500.
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

// errorBody is the seed's error format.
type errorBody struct {
	Error   string `json:"error"`
	Details string `json:"details"`
	Code    string `json:"code"`
}

func errNotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found"}
}

func errValidation(details string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Message: "Invalid request", Details: details}
}

// toError is the one place where errors become HTTP answers.
func toError(err error) *Error {
	var (
		apiErr   *Error
		valErr   *lifecycle.ValidationError
		stateErr *lifecycle.StateError
		nameErr  *lifecycle.NameTakenError
		quotaErr *store.QuotaExceededError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &valErr):
		return errValidation(valErr.Error())
	case errors.As(err, &stateErr):
		return &Error{Status: http.StatusConflict, Code: CodeInvalidState, Message: "Environment is not in a state that allows this", Details: stateErr.Error()}
	case errors.As(err, &quotaErr):
		return quotaError(quotaErr)
	case errors.As(err, &nameErr):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "Name already in use", Details: nameErr.Error() + "; pick another name or delete that one"}
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("Resource")
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "Already exists"}
	case errors.Is(err, auth.ErrBadCredentials):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "Invalid email or password"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "Internal server error", Details: "the error was logged; see the server log"}
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dev8"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
	reqID := middleware.GetReqID(r.Context())
	if e.Status >= 500 {
		a.log.ErrorContext(r.Context(), "request failed", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.DebugContext(r.Context(), "request rejected", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	writeJSON(w, e.Status, errorBody{Error: e.Message, Details: e.Details, Code: e.Code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

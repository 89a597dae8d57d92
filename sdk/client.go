// Package sdk is the Go client for Dev8's REST API (/api/v1) and its
// websocket tunnels (SSH, port forwarding, terminals).
//
//	c := sdk.New("http://127.0.0.1:3000", "")
//	token, user, err := c.Login(ctx, "ada@example.com", "correct horse")
//	c = sdk.New("http://127.0.0.1:3000", token)
//	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "my-env"})
//	env, err = c.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil)
//	conn, err := c.DialSSH(ctx, env.ID) // a net.Conn carrying SSH
//
// Every method takes a context first. Errors the API answers are *Error
// (status, message, details and the API's error code); transport failures
// are returned as they are.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultUserAgent is sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "dev8-sdk"

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 16 << 20

// Client talks to one Dev8 server with one token. It is safe for concurrent
// use.
type Client struct {
	baseURL   *url.URL
	token     string
	http      *http.Client
	userAgent string
	err       error // a bad base URL, reported by every call
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client used for every request and websocket
// handshake (default: a client on a clone of http.DefaultTransport, with no
// overall timeout: bound calls with their context).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.http = h
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client for the server at baseURL (e.g.
// "http://127.0.0.1:3000", optionally with a path prefix when the server is
// behind a proxy) that authenticates with token (empty for signup and login).
// A malformed baseURL is reported by the first call.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		token:     token,
		http:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		userAgent: DefaultUserAgent,
	}
	c.baseURL, c.err = ParseBaseURL(baseURL)
	for _, o := range opts {
		o(c)
	}
	return c
}

// ParseBaseURL checks a server URL: http or https, a host, no query or
// fragment. A trailing slash is dropped.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: want http:// or https://", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("server URL %q: must not have user info, a query or a fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL is the server URL the client talks to, without a trailing slash.
func (c *Client) BaseURL() string {
	if c.baseURL == nil {
		return ""
	}
	return c.baseURL.String()
}

// Token is the bearer token the client sends (empty if none).
func (c *Client) Token() string { return c.token }

// endpoint is the absolute URL of an /api/v1 path with query q.
func (c *Client) endpoint(path string, q url.Values) (string, error) {
	if c.err != nil {
		return "", c.err
	}
	u := *c.baseURL
	u.Path = c.baseURL.Path + "/api/v1" + path
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// do sends a JSON request to /api/v1+path and decodes a 2xx JSON answer into
// out (if not nil). Any other answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	endpoint, err := c.endpoint(path, q)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

func (c *Client) authorize(h http.Header) {
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
}

// ErrorResponse is the API's error format, the body of every non-2xx
// answer: a short sentence, more detail (may be empty), and a stable code.
type ErrorResponse struct {
	Error   string `json:"error"`
	Details string `json:"details"`
	Code    string `json:"code"`
}

// decodeError turns a non-2xx answer into an *Error. A body that is not the
// API's error format (a proxy's HTML page, say) keeps the status and a short
// excerpt.
func decodeError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	// Every API error has a message; a body without one is not ours.
	var body ErrorResponse
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Details, e.Code = body.Error, body.Details, body.Code
		return e
	}
	e.Message = http.StatusText(resp.StatusCode)
	if e.Message == "" {
		e.Message = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	excerpt := strings.TrimSpace(string(data))
	if i := strings.IndexByte(excerpt, '\n'); i >= 0 {
		excerpt = excerpt[:i]
	}
	if len(excerpt) > 200 {
		excerpt = excerpt[:200] + "…"
	}
	e.Details = excerpt
	return e
}

// Error is an error answer from the API: {"error","details","code"} and the
// HTTP status.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the API's "error": a short sentence.
	Message string
	// Details says more (may be empty).
	Details string
	// Code is stable for programs to branch on (CodeNotFound, ...); empty
	// when the answer did not come from the API itself.
	Code string
	// RequestID is the server's X-Request-Id, to match its log.
	RequestID string
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Message
	}
	return e.Message + ": " + e.Details
}

// Error codes the API answers with (the "code" field).
const (
	CodeInvalidJSON      = "INVALID_JSON"
	CodeValidation       = "VALIDATION_ERROR"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeConflict         = "CONFLICT"
	CodeInvalidState     = "INVALID_STATE"
	// CodeRuntimeUnavailable (409): the runtime an environment runs on is
	// not configured here, or the one a create asks for cannot run its
	// template yet (details say what to run); nothing was changed.
	CodeRuntimeUnavailable = "RUNTIME_UNAVAILABLE"
	// CodeRuntimeAdminOnly (403): the runtime shares the server's host (no
	// isolation), so only admins' workspaces may run on it; nothing was
	// changed.
	CodeRuntimeAdminOnly = "RUNTIME_ADMIN_ONLY"
	CodeTooLarge         = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia = "UNSUPPORTED_MEDIA_TYPE"
	CodeInternal         = "INTERNAL_ERROR"
	CodeNotReady         = "NOT_READY"
	// CodeMisdirected (421): the request named a host this server is not
	// configured for (a DNS-rebinding page does); reach it at its access
	// URL, an IP address or localhost.
	CodeMisdirected = "MISDIRECTED_REQUEST"
	// CodeUnavailable: the workspace cannot be reached or refused a
	// connection (SSH, port forwarding, terminal).
	CodeUnavailable = "WORKSPACE_UNAVAILABLE"
	// CodeRateLimited: too many requests; the answer's Retry-After says
	// when to try again.
	CodeRateLimited = "RATE_LIMITED"
	// CodeTooManyStreams (429): the caller, or the server, has as many
	// streams open (terminals, SSH and port-forward connections, IDE
	// websockets, event streams) as it may; one must close first.
	CodeTooManyStreams = "TOO_MANY_STREAMS"
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
	// CodeSignupClosed (403): the server's signup policy is closed and the
	// signup came without an invite; an admin's invite link is the way in.
	CodeSignupClosed = "SIGNUP_CLOSED"
	// CodeInviteRequired (403): the server signs people up by invitation
	// (its policy is invite) and the signup came without an invite.
	CodeInviteRequired = "INVITE_REQUIRED"
	// CodeInviteInvalid (403): the signup's invite cannot be used: no such
	// invite, used, revoked, expired, or for another email address
	// (details say which).
	CodeInviteInvalid = "INVITE_INVALID"
)

// IsCode reports whether err is (or wraps) an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsUnauthorized reports whether err is the API's 401: no, a bad or an
// expired token.
func IsUnauthorized(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

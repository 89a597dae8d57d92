package httpmw

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/httpapi"
)

// LimitBody caps a request's body at httpapi.MaxBodyBytes.
func LimitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// RequestID gives every request an id, which handlers read with
// middleware.GetReqID and EchoRequestID returns: the client's X-Request-Id
// when it is a short token (at most 64 letters, digits and ._:-), since it
// is echoed and logged; otherwise one made here.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(middleware.RequestIDHeader)
		if !clientRequestID.MatchString(id) {
			id = "req-" + rand.Text()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

// clientRequestID is an X-Request-Id kept as the client sent it.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// EchoRequestID returns the request's id (see RequestID) so a user's report
// can be matched with the server's log.
func EchoRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(middleware.RequestIDHeader, middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	})
}

// Recover turns a handler's panic into a logged 500. http.ErrAbortHandler
// is passed on: it is how a handler asks net/http to drop the connection.
func Recover(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic serving request", "panic", v, "stack", string(debug.Stack()))
					httpapi.WriteError(log, w, r, fmt.Errorf("panic: %v", v))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// LogRequests logs one line per request when it is done: at INFO, except
// static files — the dashboard's (every page load fetches a handful) and
// those VS Code fetches through the IDE proxy (hundreds when it opens) —
// which are logged at DEBUG unless they fail with a server error.
func LogRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return logRequests(log, isAsset, false)
}

// LogAppRequests is LogRequests for workspace apps' own origins: the line
// names the host (the path alone does not say which workspace), and every
// GET or HEAD but an app's root page is one of the files its page loads.
// Query strings are never logged (a sign-in ticket travels in one).
func LogAppRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return logRequests(log, func(r *http.Request) bool {
		return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path != "/" && !IsWebsocketHandshake(r)
	}, true)
}

func logRequests(log *slog.Logger, asset func(*http.Request) bool, withHost bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			level := slog.LevelInfo
			if asset(r) && ww.Status() < http.StatusInternalServerError {
				level = slog.LevelDebug
			}
			attrs := []any{
				"request_id", middleware.GetReqID(r.Context()),
				"method", r.Method,
				"path", r.URL.Path,
				"status", ww.Status(),
				"bytes", ww.BytesWritten(),
				"duration", time.Since(start),
			}
			if withHost {
				attrs = append(attrs, "host", r.Host)
			}
			log.Log(r.Context(), level, "request", attrs...)
		})
	}
}

// isAsset tells whether r asks for one of the dashboard's static files, the
// icon a browser asks for on its own, or a file under a workspace's IDE
// (/w/{id}/ide/…, not the IDE's page itself).
func isAsset(r *http.Request) bool {
	path := r.URL.Path
	if strings.HasPrefix(path, "/static/") || path == "/favicon.ico" {
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	_, rest, ok := strings.Cut(strings.TrimPrefix(path, "/w/"), "/ide/")
	return strings.HasPrefix(path, "/w/") && ok && rest != ""
}

// RequestObserver records each request, for metrics (internal/metrics has
// one). route is the pattern that matched (/api/v1/environments/{id}),
// never the raw path, so its values are bounded; "" when none matched.
type RequestObserver interface {
	// ObserveRequest: an ordinary request was served in d.
	ObserveRequest(route, method string, status int, d time.Duration)
	// ObserveStream: a request became a stream, kind "websocket" or "sse";
	// how long it lasted is a session's length, not a latency.
	ObserveStream(route, kind string)
}

// ObserveRequests times every request and reports it to obs (nil: none)
// with its route pattern, which chi fills in while routing, so it is read
// after next.
func ObserveRequests(obs RequestObserver) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if obs == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := chi.RouteContext(r.Context()).RoutePattern()
			switch {
			case ww.Status() == http.StatusSwitchingProtocols:
				obs.ObserveStream(route, "websocket")
			case strings.HasPrefix(ww.Header().Get("Content-Type"), "text/event-stream"):
				obs.ObserveStream(route, "sse")
			default:
				obs.ObserveRequest(route, r.Method, ww.Status(), time.Since(start))
			}
		})
	}
}

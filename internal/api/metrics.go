package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

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

// observeRequests times every request and reports it with its route
// pattern, which chi fills in while routing, so it is read after next.
func (a *API) observeRequests(next http.Handler) http.Handler {
	if a.requests == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		switch {
		case ww.Status() == http.StatusSwitchingProtocols:
			a.requests.ObserveStream(route, "websocket")
		case strings.HasPrefix(ww.Header().Get("Content-Type"), "text/event-stream"):
			a.requests.ObserveStream(route, "sse")
		default:
			a.requests.ObserveRequest(route, r.Method, ww.Status(), time.Since(start))
		}
	})
}

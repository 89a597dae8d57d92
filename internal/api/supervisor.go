package api

import (
	"net/http"

	"dev8.dev/dev8/internal/httpapi"
)

// supervisorBinary answers a workspace's bootstrap (the environment's own
// agent token, RequireAgent) with the supervisor executable: streamed,
// with its Content-Length and SHA-256 (supervisorbin.HeaderSHA256), which
// the bootstrap checks before it runs it. A Kubernetes workspace started
// with --kubernetes-supervisor-from server fetches it so (the runtime's
// bootstrap), so the pod needs no init container. Only the platform this
// server was built for is served (supervisorbin.Platform).
func (a *API) supervisorBinary(w http.ResponseWriter, r *http.Request) {
	if a.supervisor == nil {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
			Message: "No supervisor to serve", Details: a.supervisorMissing})
		return
	}
	if err := a.supervisor.Serve(w, r); err != nil {
		// The path is the server's business: the log has it.
		a.log.ErrorContext(r.Context(), "serve the supervisor to a workspace", "err", err)
		a.writeError(w, r, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeUnavailable,
			Message: "No supervisor to serve", Details: "the server's supervisor file cannot be read (the server's log says why)"})
	}
}

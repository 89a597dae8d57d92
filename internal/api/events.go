package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

// eventsKeepalive is how often an idle event stream sends a comment, so
// proxies and browsers do not take it for dead.
const eventsKeepalive = 25 * time.Second

// eventsMaxDuration ends a stream after a while; the browser reconnects by
// itself, and the reconnect checks the caller's credentials again, so a
// revoked session or a suspended user does not keep a stream for ever.
const eventsMaxDuration = 10 * time.Minute

// environmentEvents streams changes to the caller's environments as
// Server-Sent Events (the dashboard's live status): one `environment` event
// with the environment's JSON per change, and `deleted` with {"id"} when one
// is deleted. Admins may ask for everyone's with ?all=true. A client should
// subscribe first and then load the list, so no change falls between.
func (a *API) environmentEvents(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	all := r.URL.Query().Get("all") == "true"
	if all && caller.Role != store.RoleAdmin {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "all=true is for admins"})
		return
	}
	rc := http.NewResponseController(w)
	events, unsubscribe := a.lifecycle.Subscribe()
	defer unsubscribe()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Tells nginx and the like not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A first comment, so the client's EventSource opens at once.
	if _, err := fmt.Fprint(w, ": dev8 environment events\nretry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	keepalive := time.NewTicker(eventsKeepalive)
	defer keepalive.Stop()
	expire := time.NewTimer(eventsMaxDuration)
	defer expire.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-expire.C:
			return
		case <-a.shuttingDown:
			// The server is stopping: end the stream so shutdown need not
			// wait; the browser reconnects to the next server by itself.
			return
		case <-keepalive.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
		case env := <-events:
			if !all && env.UserID != caller.ID {
				continue
			}
			if env.DeletedAt != nil {
				err = writeEvent(w, "deleted", map[string]string{"id": env.ID})
			} else {
				err = writeEvent(w, "environment", a.toEnvironmentJSON(env))
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	return err
}

// Drain makes /ready answer 503: the server is about to stop, and a load
// balancer should send its requests elsewhere. Everything else goes on.
func (a *API) Drain() { a.draining.Store(true) }

// Shutdown ends the API's long-lived responses (event streams); the server
// calls it when it begins a graceful shutdown.
func (a *API) Shutdown() {
	a.shutdownOnce.Do(func() { close(a.shuttingDown) })
}

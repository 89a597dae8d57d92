package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/unixsock"
)

// The agent socket is how the supervisors of workspaces on this host reach
// the server when their workspace has no network path to it (the docker
// runtime's bridge network, the local runtime's sandbox): a unix socket
// whose directory the runtime mounts into the workspace, answering the
// supervisor's routes and nothing else. The server's other listeners (the
// dashboard and API, the admin listener) are not reachable from such a
// workspace at all.

// agentSocketName is the socket's file name in its directory, which holds
// nothing else: runtimes mount the directory (a socket made anew by the next
// server is then seen by running workspaces, which a mount of the file
// itself would not).
const agentSocketName = "agent.sock"

// agentSocketPath is where the socket of the server on dataDir lives:
// <dataDir>/agent/agent.sock, or a directory of its own under the system's
// temporary directory when that is too long (see unixsock.Path).
func agentSocketPath(dataDir string) (string, error) {
	p, err := unixsock.Path(filepath.Join(dataDir, "agent"), agentSocketName)
	if err != nil {
		return "", fmt.Errorf("agent socket: %w", err)
	}
	return p, nil
}

// listenAgentSocket listens on the socket, with its directory 0755 and
// itself 0666: a workspace user of any uid must reach it through the
// mount, and only the supervisor's routes answer there, each with its
// token. A socket left by an earlier server on this data directory is
// replaced: the data directory's lock says no other server uses it.
func listenAgentSocket(path string) (net.Listener, error) {
	ln, err := unixsock.Listen(path, 0o755, 0o666)
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	return ln, nil
}

// agentRoute matches the routes a supervisor calls (see api.Handler: the
// tunnel, the manifest, usage and activity reports).
var agentRoute = regexp.MustCompile(`^/api/v1/environments/[^/]+/(tunnel|manifest|usage|activity)$`)

// agentOnly passes the supervisor's routes to next and answers 404 to
// anything else.
func agentOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !agentRoute.MatchString(r.URL.Path) {
			httpapi.WriteError(nil, w, r, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound,
				Message: "No such route", Details: "the agent socket answers only a workspace supervisor's routes"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AgentSocket is the path of the agent socket.
func (s *Server) AgentSocket() string { return s.agentLn.Addr().String() }

// serveAgentSocket serves the agent socket until ctx is done. Its
// connections are the supervisors' tunnels (hijacked: Shutdown leaves them
// to Tunnels.Close) and their short reports.
func (s *Server) serveAgentSocket(ctx context.Context) error {
	srv := &http.Server{
		Handler:           agentOnly(s.handler),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Debug("agent socket", "path", s.AgentSocket())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.agentLn) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve agent socket: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-served
	if err != nil {
		return fmt.Errorf("shut down agent socket: %w", err)
	}
	return nil
}

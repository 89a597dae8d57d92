// Package status is the supervisor's loopback status endpoint: GET /health
// and GET /status (agentapi.Health, agentapi.Status), which the local
// runtime polls and people read when a workspace misbehaves.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"dev8.dev/dev8/internal/agentapi"
)

// Config configures Listen. Every source may be nil.
type Config struct {
	// Addr is the loopback host:port to listen on.
	Addr          string
	EnvironmentID string
	WorkspaceDir  string
	// Started is when the supervisor started (for the uptime).
	Started    time.Time
	CodeServer interface {
		Status() agentapi.CodeServerStatus
	}
	Activity interface {
		Last() (time.Time, string)
	}
	Reporter interface {
		Status() agentapi.ReporterStatus
	}
	// Tunnel says when the tunnel last came up and how often it did.
	Tunnel interface {
		LastUp() (time.Time, int)
	}
	// Streams counts the open tunnel streams.
	Streams interface{ Active() int }
}

// Server is the supervisor's loopback status endpoint.
type Server struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
}

// Listen binds cfg.Addr; Run serves.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("supervisor: status endpoint: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, agentapi.Health{Status: agentapi.HealthHealthy})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.status())
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

func (s *Server) status() agentapi.Status {
	st := agentapi.Status{
		EnvironmentID: s.cfg.EnvironmentID,
		Status:        agentapi.HealthHealthy,
		StartedAt:     s.cfg.Started.UTC(),
		UptimeSeconds: time.Since(s.cfg.Started).Seconds(),
		WorkspaceDir:  s.cfg.WorkspaceDir,
		PID:           os.Getpid(),
		CodeServer:    agentapi.CodeServerStatus{State: agentapi.CodeServerAbsent},
	}
	if s.cfg.CodeServer != nil {
		st.CodeServer = s.cfg.CodeServer.Status()
	}
	if s.cfg.Activity != nil {
		if at, kind := s.cfg.Activity.Last(); !at.IsZero() {
			at = at.UTC()
			st.LastActivity, st.LastActivityKind = &at, kind
		}
	}
	if s.cfg.Tunnel != nil {
		if at, n := s.cfg.Tunnel.LastUp(); n > 0 {
			st.TunnelUpAt, st.TunnelConnects = &at, n
		}
	}
	if s.cfg.Reporter != nil {
		r := s.cfg.Reporter.Status()
		st.Reporter = &r
	}
	if s.cfg.Streams != nil {
		st.Sessions = s.cfg.Streams.Active()
	}
	return st
}

// Run serves until ctx ends, then shuts the endpoint down.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("supervisor: status endpoint: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("supervisor: status endpoint: %w", err)
	}
	return ctx.Err()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

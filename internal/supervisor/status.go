package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Status is the body of GET /status.
type Status struct {
	EnvironmentID string           `json:"environmentId"`
	Status        string           `json:"status"`
	StartedAt     time.Time        `json:"startedAt"`
	UptimeSeconds float64          `json:"uptimeSeconds"`
	WorkspaceDir  string           `json:"workspaceDir"`
	PID           int              `json:"pid"`
	CodeServer    CodeServerStatus `json:"codeServer"`
	// Sessions is how many tunnel streams (SSH connections, terminals,
	// forwarded connections, IDE connections) are open.
	Sessions int `json:"sessions"`
	// LastActivity is when a person last used the workspace, and how.
	LastActivity     *time.Time `json:"lastActivity,omitempty"`
	LastActivityKind string     `json:"lastActivityKind,omitempty"`
	// TunnelUpAt is when the tunnel to the server last came up;
	// TunnelConnects counts how often it did (reconnects after server
	// restarts included).
	TunnelUpAt     *time.Time      `json:"tunnelUpAt,omitempty"`
	TunnelConnects int             `json:"tunnelConnects"`
	Reporter       *ReporterStatus `json:"reporter,omitempty"`
}

// Code-server states reported in CodeServerStatus.State.
const (
	CodeServerAbsent     = "absent"     // not configured
	CodeServerStarting   = "starting"   // launched, /healthz not answered yet
	CodeServerRunning    = "running"    // /healthz answered
	CodeServerRestarting = "restarting" // exited; waiting out the backoff
	CodeServerStopped    = "stopped"    // supervisor is shutting down
)

// CodeServerStatus is code-server's part of Status.
type CodeServerStatus struct {
	State    string `json:"state"`
	Address  string `json:"address,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	// LastExit describes how the previous code-server process ended.
	LastExit   string     `json:"lastExit,omitempty"`
	LastExitAt *time.Time `json:"lastExitAt,omitempty"`
	// LastHealthyAt is when /healthz last answered.
	LastHealthyAt *time.Time `json:"lastHealthyAt,omitempty"`
	// Health and LastHeartbeat are copied from code-server's /healthz:
	// "alive" or "expired", and when a client last showed activity (zero if
	// none has).
	Health        string     `json:"health,omitempty"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
}

type statusServer struct {
	cfg     Config
	started time.Time
	cs      *codeServer
	ln      net.Listener
	srv     *http.Server

	// Set by Run after listenStatus; each may be nil.
	activity *Activity
	reporter *Reporter
	tunnel   *tunnelState
	streams  interface{ Active() int }
}

func listenStatus(cfg Config, started time.Time, cs *codeServer) (*statusServer, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("supervisor: status endpoint: %w", err)
	}
	s := &statusServer{cfg: cfg, started: started, cs: cs, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"status": "healthy"})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.status())
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

func (s *statusServer) status() Status {
	st := Status{
		EnvironmentID: s.cfg.EnvironmentID,
		Status:        "healthy",
		StartedAt:     s.started.UTC(),
		UptimeSeconds: time.Since(s.started).Seconds(),
		WorkspaceDir:  s.cfg.WorkspaceDir,
		PID:           os.Getpid(),
		CodeServer:    CodeServerStatus{State: CodeServerAbsent},
	}
	if s.cs != nil {
		st.CodeServer = s.cs.status()
	}
	if s.activity != nil {
		if at, kind := s.activity.Last(); !at.IsZero() {
			at = at.UTC()
			st.LastActivity, st.LastActivityKind = &at, kind
		}
	}
	if s.tunnel != nil {
		if at, n := s.tunnel.get(); n > 0 {
			st.TunnelUpAt, st.TunnelConnects = &at, n
		}
	}
	if s.reporter != nil {
		r := s.reporter.Status()
		st.Reporter = &r
	}
	if s.streams != nil {
		st.Sessions = s.streams.Active()
	}
	return st
}

func (s *statusServer) run(ctx context.Context) error {
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

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

	"dev8.dev/dev8/internal/agentapi"
)

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
		writeJSON(w, agentapi.Health{Status: agentapi.HealthHealthy})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.status())
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

func (s *statusServer) status() agentapi.Status {
	st := agentapi.Status{
		EnvironmentID: s.cfg.EnvironmentID,
		Status:        agentapi.HealthHealthy,
		StartedAt:     s.started.UTC(),
		UptimeSeconds: time.Since(s.started).Seconds(),
		WorkspaceDir:  s.cfg.WorkspaceDir,
		PID:           os.Getpid(),
		CodeServer:    agentapi.CodeServerStatus{State: agentapi.CodeServerAbsent},
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

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"dev8.dev/dev8/internal/metrics"
)

// The admin listener serves what operators and their tools read and users
// must not: Prometheus metrics at /metrics and the Go profiler under
// /debug/pprof/ (heap profiles hold pieces of memory: tokens, secrets). It
// is off unless Config.AdminAddr is set, and should stay on loopback or a
// private network; it has no authentication of its own.

// listenAdmin binds the admin address at start, so a taken port fails
// dev8 server at once rather than later in the background. Empty: off.
func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return ln, nil
}

// adminHandler serves /metrics and the profiler.
func adminHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "dev8 admin: /metrics (Prometheus), /debug/pprof/ (Go profiler)")
	})
	return mux
}

// AdminAddr is the admin listener's address, nil when it is off.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Metrics is the server's registry and series.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// serveAdmin serves the admin listener until ctx is done.
func (s *Server) serveAdmin(ctx context.Context) error {
	if s.adminLn == nil {
		return nil
	}
	srv := &http.Server{
		Handler:           adminHandler(s.metrics),
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: a CPU profile or trace streams for as long as
		// it was asked to run (?seconds=).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("admin listener: metrics and pprof", "addr", s.adminLn.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.adminLn) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve admin: %w", err)
	case <-ctx.Done():
	}
	// Scrapes in flight finish before the store closes; a profile still
	// streaming is cut off.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin: %w", err)
	}
	return nil
}

// closeAdmin releases the admin listener of a server that never served.
func (s *Server) closeAdmin() {
	if s.adminLn != nil {
		_ = s.adminLn.Close()
	}
}

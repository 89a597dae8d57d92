// Package codeserver keeps the workspace's code-server running: it starts
// it (on a port or a unix socket), restarts it with bounded backoff when it
// dies, polls its /healthz and reports what it sees for /status.
package codeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/userenv"
)

// Config configures New. Zero durations take defaults.
type Config struct {
	// Executable is code-server; Addr is where it binds (host:port, or
	// unix:/path: see addr.go).
	Executable string
	Addr       string
	// WorkspaceDir is the folder it opens; HomeDir holds its user data and
	// extensions.
	WorkspaceDir  string
	HomeDir       string
	EnvironmentID string
	// StopTimeout bounds SIGTERM→SIGKILL on shutdown [5s].
	StopTimeout time.Duration
	// Restart backoff: it starts at RestartBackoffMin [1s], doubles up to
	// RestartBackoffMax [30s], and goes back to the minimum once
	// code-server has stayed up for StableAfter [30s].
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	StableAfter       time.Duration
	// HealthInterval is how often /healthz is polled once it has answered
	// [5s]; before that it is polled faster so the status flips to
	// "running" within a fraction of a second.
	HealthInterval time.Duration
	Logger         *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	if c.RestartBackoffMin <= 0 {
		c.RestartBackoffMin = time.Second
	}
	if c.RestartBackoffMax <= 0 {
		c.RestartBackoffMax = 30 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 30 * time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server keeps one code-server process running, restarting it with
// bounded backoff when it dies, and records what it sees for /status.
type Server struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client

	mu sync.Mutex
	st agentapi.CodeServerStatus
}

// New returns a Server for cfg; Run starts code-server.
func New(cfg Config) *Server {
	cfg.setDefaults()
	return &Server{
		cfg: cfg,
		log: cfg.Logger.With("component", "code-server"),
		client: &http.Client{
			Timeout: 2 * time.Second,
			// A poll every few seconds gains nothing from keeping a
			// connection open to a process that may be replaced.
			Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialerFor(cfg.Addr)},
		},
		st: agentapi.CodeServerStatus{State: agentapi.CodeServerStarting, Address: cfg.Addr},
	}
}

// Status is code-server's part of the supervisor's /status.
func (c *Server) Status() agentapi.CodeServerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Server) update(f func(*agentapi.CodeServerStatus)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.st)
}

// Args is code-server's command line, without the executable.
func (c *Server) Args() []string {
	data := filepath.Join(c.cfg.HomeDir, ".local", "share", "code-server")
	args := append([]string{"--auth", "none"}, listenArgs(c.cfg.Addr)...)
	return append(args,
		"--disable-telemetry",
		"--disable-update-check",
		"--user-data-dir", data,
		"--extensions-dir", filepath.Join(data, "extensions"),
		c.cfg.WorkspaceDir,
	)
}

// Run restarts code-server until ctx is cancelled.
func (c *Server) Run(ctx context.Context) error {
	backoff := c.cfg.RestartBackoffMin
	for {
		began := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			c.update(func(s *agentapi.CodeServerStatus) { s.State = agentapi.CodeServerStopped; s.PID = 0 })
			return ctx.Err()
		}
		// A process that stayed up a while crashed for a new reason; one
		// that dies at once should not be relaunched in a tight loop.
		if time.Since(began) >= c.cfg.StableAfter {
			backoff = c.cfg.RestartBackoffMin
		}
		now := time.Now().UTC()
		reason := describeExit(err)
		c.update(func(s *agentapi.CodeServerStatus) {
			s.State = agentapi.CodeServerRestarting
			s.PID = 0
			s.LastExit = reason
			s.LastExitAt = &now
		})
		c.log.Warn("code-server exited; restarting", "reason", reason, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			c.update(func(s *agentapi.CodeServerStatus) { s.State = agentapi.CodeServerStopped })
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.RestartBackoffMax)
		c.update(func(s *agentapi.CodeServerStatus) { s.Restarts++ })
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// runOnce starts code-server and returns when it has exited, with its exit
// error, or after ctx is cancelled and the process group is gone.
func (c *Server) runOnce(ctx context.Context) error {
	if err := removeStaleSocket(c.cfg.Addr); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	cmd := exec.Command(c.cfg.Executable, c.Args()...)
	cmd.Dir = c.cfg.WorkspaceDir
	// code-server's terminals and extensions are user processes: they get
	// the user's environment, never the agent token.
	cmd.Env = userenv.Build(os.Environ(), c.cfg.HomeDir, c.cfg.EnvironmentID, c.cfg.WorkspaceDir)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	// Its own process group, so that stopping or restarting it also ends the
	// helpers it spawns (extension host, terminals, file watchers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	c.update(func(s *agentapi.CodeServerStatus) {
		s.State = agentapi.CodeServerStarting
		s.PID = pid
		s.Health = ""
	})
	c.log.Info("code-server started", "pid", pid, "addr", c.cfg.Addr)

	exited := make(chan error, 1)
	go func() { exited <- waitGroupLeader(cmd) }()

	healthy := false
	for {
		// Poll quickly until the first answer (code-server needs about a
		// second), then at the configured pace.
		interval := 100 * time.Millisecond
		if healthy {
			interval = c.cfg.HealthInterval
		}
		t := time.NewTimer(interval)
		select {
		case err := <-exited:
			t.Stop()
			return err
		case <-ctx.Done():
			t.Stop()
			return c.stop(cmd, exited)
		case <-t.C:
			healthy = c.checkHealth(ctx) || healthy
		}
	}
}

// waitGroupLeader waits for cmd to exit, kills whatever is left of its
// process group, then reaps it. Killing before reaping matters: while the
// leader is an unreaped zombie its pid (= the group id) cannot be reused, so
// the SIGKILL cannot hit an unrelated group.
func waitGroupLeader(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	return cmd.Wait()
}

// stop ends code-server's process group: SIGTERM, then SIGKILL after
// StopTimeout. It returns once the leader is reaped.
func (c *Server) stop(cmd *exec.Cmd, exited <-chan error) error {
	pid := cmd.Process.Pid
	c.log.Info("stopping code-server", "pid", pid)
	_ = unix.Kill(-pid, unix.SIGTERM)
	t := time.NewTimer(c.cfg.StopTimeout)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
	}
	c.log.Warn("code-server ignored SIGTERM; killing it", "pid", pid, "after", c.cfg.StopTimeout)
	_ = unix.Kill(-pid, unix.SIGKILL)
	return <-exited
}

// checkHealth polls code-server's /healthz, which needs no auth and does not
// count as user activity.
func (c *Server) checkHealth(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpHost(c.cfg.Addr)+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.update(func(s *agentapi.CodeServerStatus) {
			if s.State == agentapi.CodeServerRunning {
				s.Health = "unreachable"
			}
		})
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Status        string `json:"status"`
		LastHeartbeat int64  `json:"lastHeartbeat"` // Unix ms; 0 before any client
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return false
	}
	// lastHeartbeat is shown in /status but is not activity. What advances
	// it (code-server 4.99.4, out/node/heart.js and routes/index.js): every
	// HTTP request and websocket upgrade but /healthz itself, and a timer
	// that beats once a minute for as long as any connection stays open —
	// an idle browser tab's websocket included (checked against the real
	// code-server). Counting it would let a forgotten tab keep a workspace
	// running for ever; the server counts the IDE's use from the
	// workbench's input events instead (internal/gateway/ideactivity.go).
	now := time.Now().UTC()
	c.update(func(s *agentapi.CodeServerStatus) {
		if s.State == agentapi.CodeServerStarting {
			c.log.Info("code-server is up", "pid", s.PID)
		}
		s.State = agentapi.CodeServerRunning
		s.LastHealthyAt = &now
		s.Health = body.Status
		s.LastHeartbeat = nil
		if body.LastHeartbeat > 0 {
			hb := time.UnixMilli(body.LastHeartbeat).UTC()
			s.LastHeartbeat = &hb
		}
	})
	return true
}

// Package supervisor is the process that runs inside every workspace
// (`dev8 supervisor`). It dials its tunnel to the server and serves the
// streams the server opens through it (SSH, web terminals, forwarded ports,
// the IDE: see Streams), keeps code-server running, samples the workspace's
// resources and reports them and its activity to the server, and serves a
// loopback status endpoint. Components run side by side in one errgroup.
//
// This package only assembles them; each has a package of its own:
//
//	streams        the tunnel's streams: SSH server, web terminals, forwarded
//	               ports, the IDE, snapshot jobs
//	codeserver     keeps code-server running and healthy
//	manifest       fetches and applies the owner's secrets, git identity, keys
//	userenv        the environment user processes start from
//	monitor        samples CPU, memory, disk and network
//	report         sends samples and activity to the server
//	activity       when a person last used the workspace
//	status         the loopback GET /health and GET /status
//	workspaceuser  becomes the workspace's user when started as root
//
// What the supervisor and the server exchange (its environment variables,
// the manifest, usage samples, the status answers) is defined once, in
// internal/agentapi.
//
// What counts as activity (and so holds off the idle auto-stop) is a person
// doing something: typing in SSH or a web terminal, data sent through a
// forwarded port, code-server's heartbeat advancing. An open connection
// that carries nothing does not; the exact rule is on streams.Streams and
// in package codeserver.
//
// Main reads its configuration from the environment, which the runtime sets
// (agentapi.Launch):
//
//	DEV8_ENVIRONMENT_ID     environment id (required)
//	DEV8_WORKSPACE_DIR      the persistent workspace directory (default: the
//	                        current directory); code-server opens it
//	DEV8_SUPERVISOR_ADDR    loopback host:port of the status endpoint
//	                        (GET /health, GET /status); empty disables it
//	DEV8_CODE_SERVER        path of the code-server executable; empty means
//	                        the workspace has no IDE
//	DEV8_CODE_SERVER_ADDR   host:port code-server binds (default 127.0.0.1:13337),
//	                        or unix:/path of a socket it listens on
//	DEV8_STOP_TIMEOUT       how long a child gets between SIGTERM and SIGKILL
//	                        when the supervisor shuts down (Go duration,
//	                        default 5s); the runtime passes less than its own
//	                        stop bound so the supervisor finishes first
//	DEV8_AGENT_URL          the server's URL as the workspace reaches it;
//	                        with DEV8_AGENT_TOKEN, the supervisor dials its
//	                        tunnel there and reports usage and activity
//	DEV8_AGENT_TOKEN        the supervisor's credential (never passed on to
//	                        user processes)
//	DEV8_METRICS_INTERVAL   how often resources are sampled (default 30s)
//	DEV8_ACTIVITY_INTERVAL  how often activity is reported when there was
//	                        some (default 30s)
//	DEV8_WORKSPACE_USER     when started as root: the user to become before
//	                        anything else (package workspaceuser)
//	HOME                    code-server keeps its settings and extensions
//	                        under $HOME/.local/share/code-server; the SSH
//	                        host key is $HOME/.dev8/ssh_host_ed25519_key
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/supervisor/codeserver"
	"dev8.dev/dev8/internal/supervisor/manifest"
	"dev8.dev/dev8/internal/supervisor/report"
	"dev8.dev/dev8/internal/supervisor/status"
	"dev8.dev/dev8/internal/supervisor/streams"
	"dev8.dev/dev8/internal/supervisor/workspaceuser"
	"dev8.dev/dev8/internal/tunnel"
)

// Config is the supervisor's configuration. Zero durations take defaults.
type Config struct {
	EnvironmentID string
	WorkspaceDir  string
	// Addr is the loopback status address; empty disables the endpoint.
	Addr string
	// CodeServer is the code-server executable; empty disables it.
	CodeServer     string
	CodeServerAddr string
	// HomeDir holds code-server's user data and extensions.
	HomeDir string
	// StopTimeout bounds SIGTERM→SIGKILL for children on shutdown.
	StopTimeout time.Duration

	// AgentURL and AgentToken reach the server: the tunnel and reports.
	// Empty AgentURL: the workspace runs unconnected (status endpoint and
	// code-server only).
	AgentURL   string
	AgentToken string
	// AgentSocket, if set, is a unix socket where the server answers: all
	// of AgentURL's requests go there (see agentapi.EnvAgentSocket).
	AgentSocket string
	// MetricsInterval and ActivityInterval pace the reports (default 30s).
	MetricsInterval  time.Duration
	ActivityInterval time.Duration

	// Code-server's restart backoff and health polling: see
	// codeserver.Config, which also holds their defaults.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	StableAfter       time.Duration
	HealthInterval    time.Duration

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CodeServerAddr == "" {
		c.CodeServerAddr = agentapi.DefaultCodeServerAddr
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	// The code-server settings take their defaults in codeserver.New.
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ConfigFromEnv builds a Config from the DEV8_* variables documented above.
func ConfigFromEnv() (Config, error) {
	cfg := Config{
		EnvironmentID:  os.Getenv(agentapi.EnvEnvironmentID),
		WorkspaceDir:   os.Getenv(agentapi.EnvWorkspaceDir),
		Addr:           os.Getenv(agentapi.EnvSupervisorAddr),
		CodeServer:     os.Getenv(agentapi.EnvCodeServer),
		CodeServerAddr: os.Getenv(agentapi.EnvCodeServerAddr),
		AgentURL:       os.Getenv(agentapi.EnvAgentURL),
		AgentToken:     os.Getenv(agentapi.EnvAgentToken),
		AgentSocket:    os.Getenv(agentapi.EnvAgentSocket),
	}
	if cfg.EnvironmentID == "" {
		return Config{}, fmt.Errorf("supervisor: %s is not set", agentapi.EnvEnvironmentID)
	}
	if cfg.WorkspaceDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Config{}, fmt.Errorf("supervisor: %s is not set and the current directory is unknown: %w", agentapi.EnvWorkspaceDir, err)
		}
		cfg.WorkspaceDir = wd
	}
	for name, dst := range map[string]*time.Duration{
		agentapi.EnvStopTimeout:      &cfg.StopTimeout,
		agentapi.EnvMetricsInterval:  &cfg.MetricsInterval,
		agentapi.EnvActivityInterval: &cfg.ActivityInterval,
	} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return Config{}, fmt.Errorf("supervisor: %s: %w", name, err)
			}
			*dst = d
		}
	}
	home, err := os.UserHomeDir()
	if err != nil && cfg.CodeServer != "" {
		return Config{}, fmt.Errorf("supervisor: code-server needs a home directory: %w", err)
	}
	cfg.HomeDir = home
	return cfg, nil
}

// Main runs the supervisor configured from the environment until ctx is
// cancelled or the process receives SIGTERM or SIGINT, which Main handles
// itself. A requested shutdown returns nil once every child is gone.
func Main(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The credential a file holds is read while the file is still
	// readable (it is root's, in a container), and the file removed.
	if err := loadAgentTokenFile(); err != nil {
		return err
	}
	// Before anything else: from here on the supervisor is the workspace
	// user (package workspaceuser).
	wu, err := workspaceuser.BecomeWorkspaceUser()
	if err != nil {
		return err
	}
	cfg, err := ConfigFromEnv()
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("environment", cfg.EnvironmentID)
	if wu != nil {
		cfg.Logger.Info("running as the workspace user", "user", wu.Name, "uid", wu.UID, "gid", wu.GID, "handed_over", wu.Chowned)
	}
	if cfg.AgentURL != "" && cfg.AgentToken == "" {
		cfg.Logger.Warn("no agent token (started without Dev8?): not connecting to the server; Dev8 gives one at the next start")
		cfg.AgentURL = ""
	}
	return Run(ctx, cfg)
}

// Run runs the supervisor until ctx is cancelled; it returns nil then, or the
// error of the first component that failed.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	started := time.Now()

	act := activity.NewActivity(nil)
	var cs *codeserver.Server
	if cfg.CodeServer != "" {
		cs = codeserver.New(cfg.codeServer())
	}
	streamsCfg := streams.Config{
		EnvironmentID: cfg.EnvironmentID,
		WorkspaceDir:  cfg.WorkspaceDir,
		HomeDir:       cfg.HomeDir,
		Activity:      act,
		Logger:        cfg.Logger,
	}
	if cs != nil {
		streamsCfg.CodeServerAddr = cfg.CodeServerAddr
	}
	strm, err := streams.New(streamsCfg)
	if err != nil {
		return err
	}
	defer strm.Close()
	// One client for everything that reaches the server: over the agent
	// socket when there is one.
	agentClient := cfg.agentClient()
	var reporter *report.Reporter
	if cfg.AgentURL != "" {
		reporter, err = report.New(report.Config{
			AgentURL:       cfg.AgentURL,
			AgentToken:     cfg.AgentToken,
			EnvironmentID:  cfg.EnvironmentID,
			WorkspaceDir:   cfg.WorkspaceDir,
			SampleInterval: cfg.MetricsInterval,
			// Batches of two samples (the reporter's default pacing) at
			// whatever rate was asked for.
			ReportInterval:   2 * cfg.MetricsInterval,
			ActivityInterval: cfg.ActivityInterval,
			// Within the stop timeout, so the final report is not cut off.
			FlushTimeout: cfg.StopTimeout / 2,
			Activity:     act,
			Client:       agentClient,
			Logger:       cfg.Logger,
		})
		if err != nil {
			return err
		}
	}
	tun := &tunnelState{}
	// The owner's secrets, git identity and SSH keys.
	var mc *manifest.Client
	if cfg.AgentURL != "" {
		mc = manifest.New(manifest.Config{
			AgentURL:      cfg.AgentURL,
			AgentToken:    cfg.AgentToken,
			EnvironmentID: cfg.EnvironmentID,
			HomeDir:       cfg.HomeDir,
			HTTPClient:    agentClient,
			Logger:        cfg.Logger,
		})
	}
	var st *status.Server
	if cfg.Addr != "" {
		// Bind before anything runs so a taken port fails the start at once
		// instead of leaving a supervisor the runtime can never reach.
		scfg := status.Config{
			Addr:          cfg.Addr,
			EnvironmentID: cfg.EnvironmentID,
			WorkspaceDir:  cfg.WorkspaceDir,
			Started:       started,
			Activity:      act,
			Tunnel:        tun,
			Streams:       strm,
		}
		// Typed nils would not compare equal to nil there.
		if cs != nil {
			scfg.CodeServer = cs
		}
		if reporter != nil {
			scfg.Reporter = reporter
		}
		st, err = status.Listen(scfg)
		if err != nil {
			return err
		}
	}

	cfg.Logger.Info("supervisor started", "workspace", cfg.WorkspaceDir, "addr", cfg.Addr, "codeServer", cfg.CodeServer != "")
	g, gctx := errgroup.WithContext(ctx)
	// Runs until cancelled even when no component is configured.
	g.Go(func() error { <-gctx.Done(); return gctx.Err() })
	if st != nil {
		g.Go(func() error { return st.Run(gctx) })
	}
	if mc != nil {
		g.Go(func() error { return mc.Run(gctx) })
	}
	if cs != nil {
		g.Go(func() error {
			// code-server's environment is fixed when it starts: give
			// the manifest a moment to arrive first.
			if mc != nil {
				mc.WaitReady(gctx, manifest.StartWait)
			}
			return cs.Run(gctx)
		})
	}
	if cfg.AgentURL != "" {
		connected := func() { tun.connected(); mc.Reconnected(gctx) }
		g.Go(func() error {
			// Sessions come through the tunnel: opening it after the
			// first manifest means the first session has the secrets.
			mc.WaitReady(gctx, manifest.StartWait)
			return tunnel.Connect(gctx, tunnel.AgentConfig{
				ServerURL:     cfg.AgentURL,
				EnvironmentID: cfg.EnvironmentID,
				Token:         cfg.AgentToken,
				HTTPClient:    agentClient,
				Handler:       strm,
				Logger:        cfg.Logger.With("component", "tunnel"),
				Connected:     connected,
			})
		})
		g.Go(func() error { return reporter.Run(gctx) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	cfg.Logger.Info("supervisor stopped", "err", err)
	return err
}

// codeServer is code-server's part of cfg.
func (c Config) codeServer() codeserver.Config {
	return codeserver.Config{
		Executable:        c.CodeServer,
		Addr:              c.CodeServerAddr,
		WorkspaceDir:      c.WorkspaceDir,
		HomeDir:           c.HomeDir,
		EnvironmentID:     c.EnvironmentID,
		StopTimeout:       c.StopTimeout,
		RestartBackoffMin: c.RestartBackoffMin,
		RestartBackoffMax: c.RestartBackoffMax,
		StableAfter:       c.StableAfter,
		HealthInterval:    c.HealthInterval,
		Logger:            c.Logger,
	}
}

// tunnelState remembers when the tunnel last came up, for /status.
type tunnelState struct {
	mu sync.Mutex
	at time.Time
	n  int
}

func (t *tunnelState) connected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at = time.Now().UTC()
	t.n++
}

// LastUp is when the tunnel last came up and how often it did.
func (t *tunnelState) LastUp() (time.Time, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.at, t.n
}

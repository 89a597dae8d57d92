// Package local is the runtime that runs each workspace as a `dev8
// supervisor` process (plus the code-server it manages) on the server's own
// machine, with a directory per environment as storage. It needs nothing
// installed besides code-server, and that only for the IDE. It isolates
// nothing: workspaces run as the server's user, read what it reads (the
// data directory, other workspaces) and reach what it reaches (its
// listeners, the host's services). So it is a runtime for the admins of a
// server (runtime.HostSharer: the lifecycle refuses anybody else's
// workspaces on it); code-server listens on a unix socket in the
// workspace's own 0700 directory, not on a port other users of the machine
// could reach.
//
// Layout under Config.Dir, all 0700:
//
//	<environment id>/
//	  state.json       spec, pid + start time + boot id of the supervisor, ports
//	  workspace/       the persistent /workspace: survives Stop, removed by Delete
//	  home/            HOME of the workspace's processes (code-server settings)
//	  supervisor.log   the supervisor's stdout and stderr (.1: the previous run)
//
// A workspace directory removed while the environment was stopped is made
// anew, empty, by the next Create, which reports it (StorageCreated); Start
// alone refuses to run without it.
//
// The supervisor runs in a session of its own, so a Ctrl-C at the server's
// terminal does not reach it and a server that exits leaves it running. A new
// Runtime over the same Dir adopts the processes its state files name.
//
// Files: local.go (Config, New), create.go (Create, Delete: the storage),
// startstop.go (Start, Stop), env.go (the supervisor's environment),
// supervise.go (watching supervisors, started or adopted, and their exits),
// inspect.go (Inspect, List), state.go (the state file), proc.go (processes
// and their trees under /proc, stray sweeps).
package local

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

// Config configures a local Runtime.
type Config struct {
	// Dir holds one directory per environment. Required; created if missing.
	Dir string
	// Command starts a workspace's supervisor (argv). Default:
	// [os.Executable(), "supervisor"]; dev8 server passes the small
	// supervisor it embeds, written to a file (internal/supervisorbin).
	Command []string
	// ExtraEnv is added to every workspace's environment ("KEY=value"),
	// after the server variables passed through and before Spec.Env.
	ExtraEnv []string
	// CodeServer is the code-server executable; empty runs workspaces
	// without an IDE. See FindCodeServer.
	CodeServer string
	// StartTimeout bounds how long Start waits for the supervisor to answer
	// its status endpoint. Default 15s.
	StartTimeout time.Duration
	// StopTimeout is how long a workspace gets between SIGTERM and SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// FindCodeServer returns the code-server to use: $DEV8_CODE_SERVER if set,
// else code-server on PATH, else "" (no IDE).
func FindCodeServer() string {
	if p := os.Getenv(agentapi.EnvCodeServer); p != "" {
		return p
	}
	if p, err := exec.LookPath("code-server"); err == nil {
		return p
	}
	return ""
}

// Runtime runs workspaces as local processes. See the package doc.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	health *http.Client

	mu       sync.Mutex
	procs    map[string]*proc       // live or recently exited supervisors
	envLocks map[string]*sync.Mutex // see lockEnv
	notify   []chan<- string
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.ExitNotifier = (*Runtime)(nil)
)

// New returns a Runtime over cfg.Dir, creating it if needed.
func New(cfg Config) (*Runtime, error) {
	if cfg.Dir == "" {
		return nil, errors.New("local: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local: find own executable for the supervisor: %w", err)
		}
		cfg.Command = []string{exe, "supervisor"}
	}
	if strings.ContainsRune(cfg.Command[0], filepath.Separator) {
		// exec resolves a relative path against the child's directory,
		// which is the workspace, not ours.
		abs, err := filepath.Abs(cfg.Command[0])
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		cfg.Command = append([]string{abs}, cfg.Command[1:]...)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if currentBootID == "" {
		return nil, errors.New("local: cannot read /proc/sys/kernel/random/boot_id (Linux only)")
	}
	return &Runtime{
		cfg: cfg,
		log: cfg.Logger.With("runtime", "local"),
		health: &http.Client{
			Timeout:   time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		procs:    map[string]*proc{},
		envLocks: map[string]*sync.Mutex{},
	}, nil
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "local" }

// SharesHost implements runtime.HostSharer: workspaces are processes of the
// server's own user, so only admins may run them (see the package doc).
func (r *Runtime) SharesHost() bool { return true }

// NotifyExits implements runtime.ExitNotifier. Sends never block: when ch is
// full the id is dropped, and the lifecycle's resync notices the exit.
func (r *Runtime) NotifyExits(ch chan<- string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notify = append(r.notify, ch)
}

// The id becomes a directory name, so it must not be able to climb out of
// Dir or collide with our temp files (which start with a dot).
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid environment id %q", id)
	}
	return nil
}

func (r *Runtime) envDir(id string) string { return filepath.Join(r.cfg.Dir, id) }

// lockEnv serialises a method with the goroutine that records an unexpected
// exit of the same environment. The caller already serialises methods per
// environment; Inspect and List take no lock (state files are replaced
// atomically).
func (r *Runtime) lockEnv(id string) func() {
	r.mu.Lock()
	l, ok := r.envLocks[id]
	if !ok {
		l = &sync.Mutex{}
		r.envLocks[id] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

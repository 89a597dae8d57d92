// Package local is the runtime that runs each workspace as a `dev8
// supervisor` process (plus the code-server it manages) on the server's own
// machine, with a directory per environment as storage. It needs nothing
// installed besides code-server, and that only for the IDE. It isolates
// nothing: workspaces run as the server's user.
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
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// proc is a supervisor this Runtime started (child) or adopted from a state
// file after a restart. done closes once it is gone: for a child, after Wait
// reaped it; for an adopted one, when the watcher sees it dead.
type proc struct {
	id       identity
	child    bool
	done     chan struct{}
	exitErr  error // set before done closes
	stopping atomic.Bool
	quit     chan struct{} // ends an adopted process's watcher
	quitOnce sync.Once
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) alive() bool {
	if p.exited() {
		return false
	}
	// A child is alive until reaped; an adopted process is checked now
	// rather than trusting the watcher's last look.
	return p.child || p.id.alive()
}

func (p *proc) stopWatching() { p.quitOnce.Do(func() { close(p.quit) }) }

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

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	id := spec.EnvironmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("local: create: %w", err))
	}
	defer r.lockEnv(id)()
	dir := r.envDir(id)
	st, err := readState(dir)
	if err == nil {
		if r.live(id, st) != nil {
			return r.instance(id, st), nil
		}
		if !reflect.DeepEqual(st.Spec, spec) {
			st.Spec = spec
			if err := writeState(dir, st); err != nil {
				return runtime.Instance{}, fmt.Errorf("local: create %s: update spec: %w", id, err)
			}
		}
		created, err := r.ensureStorage(id, dir)
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("local: create %s: %w", id, err)
		}
		inst := r.instance(id, st)
		inst.StorageCreated = created
		return inst, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return runtime.Instance{}, fmt.Errorf("local: create %s: %w", id, err)
	}
	// A directory without a state file is what an interrupted Create or
	// Delete leaves: nothing in it is worth keeping.
	if err := removeAll(dir); err != nil {
		return runtime.Instance{}, fmt.Errorf("local: create %s: clear leftovers: %w", id, err)
	}
	for _, d := range []string{dir, filepath.Join(dir, workspaceDir), filepath.Join(dir, homeDir)} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return runtime.Instance{}, fmt.Errorf("local: create %s: %w", id, err)
		}
	}
	st = &state{Spec: spec, CreatedAt: time.Now().UTC()}
	// Written last: its presence is what makes the environment exist.
	if err := writeState(dir, st); err != nil {
		return runtime.Instance{}, fmt.Errorf("local: create %s: %w", id, err)
	}
	r.log.Info("environment created", "environment", id, "dir", dir)
	inst := r.instance(id, st)
	inst.StorageCreated = true
	return inst, nil
}

// ensureStorage makes the workspace and home directories of an existing,
// stopped environment anew when they are gone (removed by hand, a data
// directory restored without them), and says whether the workspace had to
// be: its files are lost, and the caller restores them from a snapshot.
func (r *Runtime) ensureStorage(id, dir string) (workspaceCreated bool, err error) {
	for _, name := range []string{workspaceDir, homeDir} {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return false, runtime.Permanent(fmt.Errorf("%s is not a directory", p))
		case !errors.Is(err, fs.ErrNotExist):
			return false, err
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return false, err
		}
		if name == workspaceDir {
			workspaceCreated = true
			r.log.Warn("workspace directory was missing; created it empty", "environment", id, "dir", p)
		}
	}
	return workspaceCreated, nil
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, id string) (runtime.Instance, error) {
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("local: start: %w", err))
	}
	defer r.lockEnv(id)()
	dir := r.envDir(id)
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return runtime.Instance{}, fmt.Errorf("local: start %s: no such environment (create it first)", id)
	}
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("local: start %s: %w", id, err)
	}
	if st.PID != 0 {
		if r.live(id, st) != nil {
			return r.instance(id, st), nil
		}
		// The previous run died on its own; end whatever it left behind
		// before a new supervisor binds the same workspace.
		killLeftovers(st.identity())
	}
	if err := sweepStrays(ctx, id, filepath.Join(dir, workspaceDir)); err != nil {
		return runtime.Instance{}, fmt.Errorf("local: start %s: %w", id, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, workspaceDir)); err != nil || !fi.IsDir() {
		// Not made anew here: an empty workspace must not replace a lost
		// one unnoticed. Create does it and reports it.
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("local: start %s: workspace directory %s is gone or not a directory (Create makes it anew)", id, filepath.Join(dir, workspaceDir)))
	}
	inst, err := r.start(ctx, id, dir, st)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("local: start %s: %w", id, err)
	}
	return inst, nil
}

func (r *Runtime) start(ctx context.Context, id, dir string, st *state) (runtime.Instance, error) {
	supAddr, err := freeLoopbackAddr()
	if err != nil {
		return runtime.Instance{}, err
	}
	var csAddr string
	if r.cfg.CodeServer != "" {
		if csAddr, err = freeLoopbackAddr(); err != nil {
			return runtime.Instance{}, err
		}
	}

	logPath := filepath.Join(dir, logFile)
	_ = os.Rename(logPath, logPath+".1") // keep the previous run's log for post-mortems
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return runtime.Instance{}, err
	}
	cmd := exec.Command(r.cfg.Command[0], r.cfg.Command[1:]...)
	cmd.Dir = filepath.Join(dir, workspaceDir)
	cmd.Env = r.env(id, dir, st.Spec, supAddr, csAddr)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// A session of its own: no terminal signals from the server's
	// terminal, and a session id that marks every process of the workspace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = logf.Close() // the child has its own descriptor
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, exec.ErrNotFound) {
			err = runtime.Permanent(err)
		}
		return runtime.Instance{}, err
	}

	// Read the start time before anything can reap the child: until then it
	// stays in /proc even if it has already exited.
	pid := cmd.Process.Pid
	ps, err := readStat(pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return runtime.Instance{}, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	p := &proc{
		id:    identity{pid: pid, startTime: ps.startTime, bootID: currentBootID},
		child: true,
		done:  make(chan struct{}),
		quit:  make(chan struct{}),
	}
	r.mu.Lock()
	r.procs[id] = p
	r.mu.Unlock()
	go r.waitChild(id, p, cmd)

	st.PID, st.StartTime, st.BootID = pid, ps.startTime, currentBootID
	st.StartedAt = time.Now().UTC()
	st.SupervisorAddr, st.CodeServerAddr = supAddr, csAddr
	err = writeState(dir, st)
	if err == nil {
		err = r.awaitHealthy(ctx, p, supAddr)
	}
	if err != nil {
		p.stopping.Store(true)
		if kerr := terminate(ctx, p.id, 0, p.done); kerr != nil {
			r.log.Error("cannot kill a workspace that failed to start", "environment", id, "pid", pid, "err", kerr)
		}
		st.PID, st.StartTime, st.BootID, st.StartedAt = 0, 0, "", time.Time{}
		if werr := writeState(dir, st); werr != nil {
			r.log.Error("cannot record failed start", "environment", id, "err", werr)
		}
		return runtime.Instance{}, fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, logPath, logTail(logPath))
	}
	r.log.Info("environment started", "environment", id, "pid", pid, "supervisor", supAddr, "ide", csAddr)
	return r.instance(id, st), nil
}

// env builds the supervisor's environment (agentapi.Launch.Environ). The
// server's own variables are not passed on wholesale: they hold its secrets
// (database URL, OAuth secrets), and a workspace must not see them; only
// passEnv and LC_* are.
func (r *Runtime) env(id, dir string, spec runtime.Spec, supAddr, csAddr string) []string {
	var inherit []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(passEnv, k) || strings.HasPrefix(k, "LC_") {
			inherit = append(inherit, kv)
		}
	}
	if os.Getenv("PATH") == "" {
		inherit = append(inherit, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	l := agentapi.Launch{
		Inherit:        inherit,
		Extra:          r.cfg.ExtraEnv,
		Env:            spec.Env,
		Home:           filepath.Join(dir, homeDir),
		EnvironmentID:  id,
		WorkspaceDir:   filepath.Join(dir, workspaceDir),
		SupervisorAddr: supAddr,
		KillAfter:      r.cfg.StopTimeout,
		AgentURL:       spec.AgentURL,
		AgentToken:     spec.AgentToken,
	}
	if csAddr != "" {
		l.CodeServer, l.CodeServerAddr = r.cfg.CodeServer, csAddr
	}
	return l.Environ()
}

// passEnv are the server's variables a workspace inherits.
var passEnv = []string{"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM"}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

// awaitHealthy polls the supervisor's GET /health until it answers, the
// process exits or StartTimeout passes.
func (r *Runtime) awaitHealthy(ctx context.Context, p *proc, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.healthy(ctx, addr) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("supervisor exited before it became healthy: %s", describeExit(p.exitErr))
		case <-ctx.Done():
			return fmt.Errorf("supervisor not healthy on %s after %s: %w", addr, r.cfg.StartTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

func (r *Runtime) healthy(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := r.health.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Status == "healthy"
}

// waitChild reaps a supervisor we started and records an exit nobody asked
// for.
func (r *Runtime) waitChild(id string, p *proc, cmd *exec.Cmd) {
	waitNoReap(p.id.pid)
	// Helpers the supervisor left behind (it died without stopping them, or
	// they ignored it) go now, while its unreaped pid keeps the session id
	// from being reused.
	killLeftovers(p.id)
	p.exitErr = cmd.Wait()
	close(p.done)
	r.recordExit(id, p)
}

// watchAdopted polls an adopted supervisor, which is not our child and so
// cannot be waited for.
func (r *Runtime) watchAdopted(id string, p *proc) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		if !p.id.alive() {
			killLeftovers(p.id)
			p.exitErr = errors.New("exit status unknown: the process was adopted after a server restart")
			close(p.done)
			r.recordExit(id, p)
			return
		}
	}
}

func (r *Runtime) recordExit(id string, p *proc) {
	if p.stopping.Load() {
		return
	}
	unlock := r.lockEnv(id)
	// Checked again under the lock: Stop, Start and Delete set it while
	// holding it.
	if p.stopping.Load() {
		unlock()
		return
	}
	// Nothing is written here: the state file is the callers' (and a
	// second Runtime over the same Dir may be writing it); the reason lives
	// in p until the next Start or Stop.
	st, err := readState(r.envDir(id))
	unlock()
	if err != nil || st.identity() != p.id {
		return // deleted, stopped or replaced by a newer run meanwhile
	}
	r.log.Warn("workspace process exited unexpectedly", "environment", id, "pid", p.id.pid, "reason", describeExit(p.exitErr))

	r.mu.Lock()
	chans := slices.Clone(r.notify)
	r.mu.Unlock()
	for _, ch := range chans {
		select {
		case ch <- id:
		default:
		}
	}
}

// live returns the running supervisor st names, adopting it if this
// Runtime did not start it, or nil if it is not running.
func (r *Runtime) live(id string, st *state) *proc {
	want := st.identity()
	r.mu.Lock()
	p := r.procs[id]
	r.mu.Unlock()
	if p != nil && p.id == want {
		if p.alive() {
			return p
		}
		return nil
	}
	if !want.alive() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.procs[id]; p != nil && p.id == want { // adopted meanwhile by a concurrent Inspect/List
		return p
	}
	p = &proc{id: want, done: make(chan struct{}), quit: make(chan struct{})}
	r.procs[id] = p
	go r.watchAdopted(id, p)
	r.log.Info("adopted running workspace", "environment", id, "pid", want.pid)
	return p
}

// instance reports st as seen now.
func (r *Runtime) instance(id string, st *state) runtime.Instance {
	dir := r.envDir(id)
	inst := runtime.Instance{
		EnvironmentID: id,
		Ref:           dir,
		State:         runtime.StateStopped,
		WorkspaceDir:  filepath.Join(dir, workspaceDir),
	}
	if st.PID == 0 {
		return inst
	}
	if r.live(id, st) != nil {
		inst.State = runtime.StateRunning
		inst.StartedAt = st.StartedAt
		inst.IDEAddress = st.CodeServerAddr
		return inst
	}
	r.mu.Lock()
	p := r.procs[id]
	r.mu.Unlock()
	if p != nil && p.id == st.identity() && p.exited() {
		inst.ExitReason = describeExit(p.exitErr)
	} else {
		inst.ExitReason = "workspace process is gone (it exited while no server was watching it)"
	}
	return inst
}

// Stop implements runtime.Runtime. Stopping an unknown environment succeeds:
// nothing of it runs.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if checkID(id) != nil {
		return nil
	}
	defer r.lockEnv(id)()
	dir := r.envDir(id)
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local: stop %s: %w", id, err)
	}
	if st.PID != 0 {
		if err := r.stop(ctx, id, st); err != nil {
			return fmt.Errorf("local: stop %s: %w", id, err)
		}
	}
	if err := sweepStrays(ctx, id, filepath.Join(dir, workspaceDir)); err != nil {
		return fmt.Errorf("local: stop %s: %w", id, err)
	}
	if st.PID == 0 {
		return nil
	}
	st.PID, st.StartTime, st.BootID, st.StartedAt = 0, 0, "", time.Time{}
	st.SupervisorAddr, st.CodeServerAddr = "", ""
	if err := writeState(dir, st); err != nil {
		return fmt.Errorf("local: stop %s: %w", id, err)
	}
	return nil
}

// stop ends the processes of the run st records, whoever started them.
func (r *Runtime) stop(ctx context.Context, id string, st *state) error {
	p := r.live(id, st) // adopt first, so the watcher knows the exit is requested
	if p == nil {
		r.mu.Lock()
		if q := r.procs[id]; q != nil && q.id == st.identity() {
			p = q // exited on its own; still reap and forget it below
		}
		r.mu.Unlock()
	}
	var reaped <-chan struct{}
	if p != nil {
		p.stopping.Store(true)
		if p.child {
			reaped = p.done
		}
	}
	r.log.Info("stopping environment", "environment", id, "pid", st.PID)
	if err := terminate(ctx, st.identity(), r.cfg.StopTimeout, reaped); err != nil {
		return err
	}
	if p != nil {
		p.stopWatching()
		r.mu.Lock()
		if r.procs[id] == p {
			delete(r.procs, id)
		}
		r.mu.Unlock()
	}
	return nil
}

// Delete implements runtime.Runtime.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	if checkID(id) != nil {
		return nil
	}
	defer r.lockEnv(id)()
	dir := r.envDir(id)
	st, err := readState(dir)
	switch {
	case err == nil:
		if st.PID != 0 {
			if err := r.stop(ctx, id, st); err != nil {
				return fmt.Errorf("local: delete %s: %w", id, err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		// An unreadable state file names no process we could stop; the
		// directory still goes.
		r.log.Warn("deleting environment with unreadable state", "environment", id, "err", err)
	}
	if err := sweepStrays(ctx, id, filepath.Join(dir, workspaceDir)); err != nil {
		return fmt.Errorf("local: delete %s: %w", id, err)
	}
	// The state file goes first: without it the environment no longer
	// exists, even if removing the rest fails half-way (a retry finishes).
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s: %w", id, err)
	}
	if err := removeAll(dir); err != nil {
		return fmt.Errorf("local: delete %s: %w", id, err)
	}
	r.log.Info("environment deleted", "environment", id)
	return nil
}

// removeAll is os.RemoveAll that also copes with read-only directories in the
// workspace (Go's module cache makes them), which stop a non-root server
// from removing their entries.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	if checkID(id) != nil {
		return runtime.Instance{}, fmt.Errorf("local: inspect %q: %w", id, runtime.ErrNotFound)
	}
	st, err := readState(r.envDir(id))
	if errors.Is(err, fs.ErrNotExist) {
		return runtime.Instance{}, fmt.Errorf("local: inspect %s: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("local: inspect %s: %w", id, err)
	}
	return r.instance(id, st), nil
}

// List implements runtime.Runtime: every directory under Dir with a state
// file.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	entries, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: list: %w", err)
	}
	var out []runtime.Instance
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("local: list: %w", err)
		}
		id := e.Name()
		if !e.IsDir() || checkID(id) != nil {
			continue
		}
		st, err := readState(r.envDir(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			// One corrupt file must not hide every other environment
			// from the reconciler.
			r.log.Warn("skipping environment with unreadable state", "environment", id, "err", err)
			continue
		}
		out = append(out, r.instance(id, st))
	}
	return out, nil
}

// logTail returns the last lines of the supervisor's log for error messages.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(log is empty)"
	}
	return strings.Join(lines, "\n")
}

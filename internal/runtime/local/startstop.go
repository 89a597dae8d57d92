package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/unixsock"
)

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
		if csAddr, err = ideSocket(dir); err != nil {
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

// ideSocket is where the workspace in dir runs code-server: a unix socket
// in the workspace's own 0700 directory (or, when that path is too long
// for a socket, in a 0700 directory of its own under the temporary
// directory), never a port: code-server runs without a password, and any
// user of this machine could connect to a port on loopback.
func ideSocket(dir string) (string, error) {
	p, err := unixsock.Path(dir, ideSocketName)
	if err == nil {
		err = unixsock.MakeDir(p, 0o700)
	}
	if err != nil {
		return "", fmt.Errorf("code-server socket: %w", err)
	}
	return "unix:" + p, nil
}

// removeIDESocketDir removes the directory ideSocket made for dir outside
// of it, if it did.
func removeIDESocketDir(dir string) error {
	p, err := unixsock.Path(dir, ideSocketName)
	if err != nil || filepath.Dir(p) == filepath.Clean(dir) {
		return nil
	}
	return os.RemoveAll(filepath.Dir(p))
}

// ideSocketName is code-server's socket's file name.
const ideSocketName = "ide.sock"

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

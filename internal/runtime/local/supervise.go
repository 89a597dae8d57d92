package local

import (
	"errors"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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

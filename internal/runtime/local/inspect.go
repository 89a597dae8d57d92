package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"dev8.dev/dev8/internal/runtime"
)

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

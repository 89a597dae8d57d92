package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"dev8.dev/dev8/internal/runtime"
)

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
	if err := removeIDESocketDir(dir); err != nil {
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

package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"dev8.dev/dev8/internal/runtime"
)

// Names inside an environment's directory.
const (
	stateFile    = "state.json"
	workspaceDir = "workspace"
	homeDir      = "home"
	logFile      = "supervisor.log"
)

// state is an environment's state file. It is the runtime's only memory that
// survives a server restart: a process recorded here and still alive (same
// pid, start time and boot) is adopted as running.
type state struct {
	Spec      runtime.Spec `json:"spec"`
	CreatedAt time.Time    `json:"createdAt"`

	// Set while the workspace should be running; cleared by Stop. A
	// recorded process that is no longer alive therefore exited on its own.
	PID       int       `json:"pid,omitempty"`
	StartTime uint64    `json:"startTime,omitempty"` // /proc/<pid>/stat field 22
	BootID    string    `json:"bootId,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`

	SupervisorAddr string `json:"supervisorAddr,omitempty"`
	CodeServerAddr string `json:"codeServerAddr,omitempty"`
}

func (s *state) identity() identity {
	return identity{pid: s.PID, startTime: s.StartTime, bootID: s.BootID}
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// writeState replaces the state file atomically (temp file + rename) so a
// crash never leaves a torn file that would hide a running process.
func writeState(dir string, st *state) (err error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+stateFile+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(append(data, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, stateFile)); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

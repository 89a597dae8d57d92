// Package extserver starts an external server program (MinIO, Azurite, …)
// for tests: it finds the binary, picks a free loopback port, runs the
// process with a data directory of its own, ties its life to the test
// binary's, and stops it and removes its data at the end.
package extserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Binary returns the executable named by the environment variable env,
// else name found on PATH. When there is neither it skips t, or fails it
// under CI (where .ci/run must have provided one), with the message missing.
func Binary(t testing.TB, env, name, missing string) string {
	t.Helper()
	if bin := os.Getenv(env); bin != "" {
		return bin
	}
	bin, err := exec.LookPath(name)
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatal(missing)
	}
	t.Skip(missing)
	return ""
}

// Start runs launch(bin) for the rest of the test and closes what it
// started when the test ends.
func Start[S interface{ Close() }](t testing.TB, bin string, launch func(bin string) (S, error)) S {
	t.Helper()
	srv, err := launch(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// Retry calls launch up to three times, since a free port can be taken
// before the server binds it, while again (nil: always) says an error may
// be that; the last error is wrapped as "start what (bin): …".
func Retry[S any](what, bin string, launch func(bin string) (S, error), again func(error) bool) (S, error) {
	var (
		srv S
		err error
	)
	for range 3 {
		if srv, err = launch(bin); err == nil {
			return srv, nil
		}
		if again != nil && !again(err) {
			break
		}
	}
	return srv, fmt.Errorf("start %s (%s): %w", what, bin, err)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server process with a temporary data directory.
type Process struct {
	Dir    string        // the data directory, removed by Close
	Exited chan struct{} // closed once the process has exited

	cmd *exec.Cmd
}

// NewProcess makes the data directory (named after pattern, as
// os.MkdirTemp does) for a process not started yet.
func NewProcess(pattern string) (*Process, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	return &Process{Dir: dir, Exited: make(chan struct{})}, nil
}

// Start starts cmd so that it dies with the test binary, and waits for it
// in the background. If it cannot start, the data directory is removed.
func (p *Process) Start(cmd *exec.Cmd) error {
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(p.Dir)
		return err
	}
	p.cmd = cmd
	go func() { _ = cmd.Wait(); close(p.Exited) }()
	return nil
}

// Close stops the process, if it was started, and removes its data.
func (p *Process) Close() {
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		<-p.Exited
	}
	os.RemoveAll(p.Dir)
}

// Shared is one server that every test of a package uses, launched on
// first use; the package's TestMain closes it after the tests.
type Shared[S interface{ Close() }] struct {
	once    sync.Once
	srv     S
	err     error
	started bool
}

// Get returns the server, launching it from bin the first time; if that
// failed, it fails t.
func (s *Shared[S]) Get(t testing.TB, bin string, launch func(bin string) (S, error)) S {
	t.Helper()
	s.once.Do(func() {
		s.srv, s.err = launch(bin)
		s.started = s.err == nil
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.srv
}

// Close stops the server if it was launched.
func (s *Shared[S]) Close() {
	if s.started {
		s.srv.Close()
	}
}

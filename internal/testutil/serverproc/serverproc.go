// Package serverproc runs a real `dev8 server` process for tests that need
// the binary itself: killing it, restarting it, checking what it writes.
package serverproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// Options configure Start.
type Options struct {
	// Args follow "server"; "--log-format json" is added (Start reads the
	// log to learn the address).
	Args []string
	// Env is added to the test's environment.
	Env []string
	// Dir is the working directory (a data directory keeps a stray .env
	// of the checkout out of the server's configuration).
	Dir string
	// OnLog, if set, sees every JSON log line with its message, in order,
	// on the goroutine reading the log. Lines before "listening" have been
	// seen when Start returns.
	OnLog func(msg string, line []byte)
}

// Process is a running dev8 server.
type Process struct {
	URL string // http://host:port it listens on

	cmd  *exec.Cmd
	done chan error
	once sync.Once
	err  error // the process's exit, once done has been read

	mu   sync.Mutex
	logs bytes.Buffer
}

// Start runs binary with "server" and opts, and returns once the server
// logged the address it listens on. The process is killed when the test
// ends, unless it was stopped before.
func Start(t testing.TB, ctx context.Context, binary string, opts Options) *Process {
	t.Helper()
	args := append([]string{"server"}, opts.Args...)
	args = append(args, "--log-format", "json")
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Dir = opts.Dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.Write(sc.Bytes())
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if opts.OnLog != nil {
				opts.OnLog(line.Msg, sc.Bytes())
			}
			if line.Msg == "listening" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // a line too long for the scanner
		p.done <- cmd.Wait()
	}()
	t.Cleanup(p.Kill)
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case err := <-p.done:
		p.once.Do(func() { p.err = err })
		t.Fatalf("dev8 server exited before listening: %v\n%s", err, p.Logs())
	case <-ctx.Done():
		t.Fatalf("dev8 server did not start: %v\n%s", ctx.Err(), p.Logs())
	}
	return p
}

// Pid is the server process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Logs is what the server has logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill stops the server with SIGKILL, as a crash would, and waits until it
// is gone. It does nothing if the server already stopped.
func (p *Process) Kill() { _ = p.stop(syscall.SIGKILL) }

// Terminate asks the server to shut down (SIGTERM) and returns how it
// exited.
func (p *Process) Terminate() error { return p.stop(syscall.SIGTERM) }

func (p *Process) stop(sig syscall.Signal) error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(sig)
		p.err = <-p.done
	})
	return p.err
}

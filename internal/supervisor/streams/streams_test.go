package streams

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/tunnel"
)

// testStreams is a Streams served the way the tunnel serves it: a listener
// whose every connection starts with a tunnel.Header, minus yamux.
type testStreams struct {
	*Streams
	addr      string
	workspace string
	home      string
	act       *activity.Activity
}

func newTestStreams(t *testing.T, tweak func(*Config)) *testStreams {
	t.Helper()
	ws, home := t.TempDir(), t.TempDir()
	// Resolve symlinks so that `pwd` output compares equal.
	ws, _ = filepath.EvalSymlinks(ws)
	act := activity.NewActivity(nil)
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	cfg := Config{
		EnvironmentID: "env-test",
		WorkspaceDir:  ws,
		HomeDir:       home,
		Activity:      act,
		Logger:        slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Env: []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"SHELL=/bin/bash",
			"LANG=C.UTF-8",
			"DEV8_AGENT_TOKEN=s3cret-agent-token",
			"DEV8_SUPERVISOR_ADDR=127.0.0.1:1",
			"DEV8_ENVIRONMENT_ID=env-test",
			"DEV8_WORKSPACE_DIR=" + ws,
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := tunnel.ReadHeader(c)
				if err != nil {
					c.Close()
					return
				}
				s.ServeStream(ctx, h, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepting
		cancel()
		s.Close()
		wg.Wait()
	})
	return &testStreams{Streams: s, addr: ln.Addr().String(), workspace: ws, home: home, act: act}
}

// dial opens a stream the way the server does: header, then reply.
func (ts *testStreams) dial(h tunnel.Header) (net.Conn, error) {
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		return nil, err
	}
	if err := tunnel.WriteHeader(c, h); err != nil {
		c.Close()
		return nil, err
	}
	if err := tunnel.ReadReply(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func streamsTestCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// streamOutput collects what a reader produces so a test can wait for text.
type streamOutput struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	mark    int
	err     error
	changed chan struct{}
}

func collectOutput(r io.Reader) *streamOutput {
	o := &streamOutput{changed: make(chan struct{})}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			if err != nil {
				o.err = err
			}
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

// waitFor waits until s appears after the previous match and returns what
// came up to and including it.
func (o *streamOutput) waitFor(ctx context.Context, t *testing.T, s string) string {
	t.Helper()
	for {
		o.mu.Lock()
		rest := o.buf.String()[o.mark:]
		if i := strings.Index(rest, s); i >= 0 {
			o.mark += i + len(s)
			o.mu.Unlock()
			return rest[:i+len(s)]
		}
		ch, err := o.changed, o.err
		o.mu.Unlock()
		if err != nil {
			t.Fatalf("output ended (%v) before %q; got %q", err, s, rest)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %q; got %q", s, rest)
		}
	}
}

// waitEOF waits for the reader to end and returns everything it produced.
func (o *streamOutput) waitEOF(ctx context.Context, t *testing.T) string {
	t.Helper()
	for {
		o.mu.Lock()
		ch, err, all := o.changed, o.err, o.buf.String()
		o.mu.Unlock()
		if err != nil {
			return all
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the end; got %q", all)
		}
	}
}

func (o *streamOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitGone waits (pidfd, no polling loop) until process pid has exited.
func waitProcessGone(ctx context.Context, t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	waitPidfd(ctx, t, fd, pid)
}

func waitPidfd(ctx context.Context, t *testing.T, fd, pid int) {
	t.Helper()
	deadline, _ := ctx.Deadline()
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			t.Fatalf("process %d is still running", pid)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
}

func TestStreamsRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestStreams(t, nil)

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	for name, h := range map[string]tunnel.Header{
		"tcp closed port": {Service: tunnel.ServiceTCP, Port: port},
		"tcp bad port":    {Service: tunnel.ServiceTCP, Port: 70000},
		"unknown":         {Service: "telnet"},
		"ide absent":      {Service: tunnel.ServiceIDE},
		"pty without id":  {Service: tunnel.ServicePTY},
	} {
		c, err := ts.dial(h)
		var refused *tunnel.RefusedError
		if !errors.As(err, &refused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: want a refusal, got %v", name, err)
			continue
		}
		if refused.Reason == "" {
			t.Errorf("%s: refusal without a reason", name)
		}
	}
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Errorf("refused streams touched activity")
	}
}

// startEchoServer accepts connections on loopback and echoes what they
// send; it returns the address.
func startEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, ln)
	return ln.Addr().String()
}

// serveEcho echoes what every connection to ln sends, until the test ends.
func serveEcho(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func TestStreamsTCPAndIDE(t *testing.T) {
	t.Parallel()
	echo := startEchoServer(t)
	ts := newTestStreams(t, func(c *Config) { c.CodeServerAddr = echo })
	_, portStr, _ := net.SplitHostPort(echo)
	port, _ := strconv.Atoi(portStr)

	// The IDE stream carries bytes but is no activity by itself.
	c, err := ts.dial(tunnel.Header{Service: tunnel.ServiceIDE})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "GET / HTTP/1.1\r\n\r\n")
	c.Close()
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Errorf("IDE traffic touched activity")
	}

	c, err = ts.dial(tunnel.Header{Service: tunnel.ServiceTCP, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "ping")
	if last, kind := ts.act.Last(); last.IsZero() || kind != activity.ActivityPortFwd {
		t.Errorf("activity after forwarded traffic = %v %q, want %q", last, kind, activity.ActivityPortFwd)
	}
	// Half-close travels: the echo server sees EOF and closes, so do we.
	c.(*net.TCPConn).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("after close-write: %q, %v", b, err)
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

func TestHostKeyPersists(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	cfg := Config{WorkspaceDir: t.TempDir(), HomeDir: home, Env: []string{}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	path := filepath.Join(home, ".dev8", "ssh_host_ed25519_key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ka := a.ssh.srv.HostSigners[0].PublicKey().Marshal()
	kb := b.ssh.srv.HostSigners[0].PublicKey().Marshal()
	if !bytes.Equal(ka, kb) {
		t.Error("host key changed between two starts")
	}
	if typ := a.ssh.srv.HostSigners[0].PublicKey().Type(); typ != "ssh-ed25519" {
		t.Errorf("host key type %s", typ)
	}
}

func TestRing(t *testing.T) {
	t.Parallel()
	r := ring{buf: make([]byte, 8)}
	r.Write([]byte("abc"))
	if got := string(r.Bytes()); got != "abc" {
		t.Fatalf("got %q", got)
	}
	r.Write([]byte("defgh"))
	if got := string(r.Bytes()); got != "abcdefgh" {
		t.Fatalf("got %q", got)
	}
	r.Write([]byte("ij"))
	if got := string(r.Bytes()); got != "cdefghij" {
		t.Fatalf("got %q", got)
	}
	r.Write([]byte("0123456789"))
	if got := string(r.Bytes()); got != "23456789" {
		t.Fatalf("got %q", got)
	}
	r.Write([]byte("x"))
	if got := string(r.Bytes()); got != "3456789x" {
		t.Fatalf("got %q", got)
	}
}

func TestStreamsCloseEndsIdleForwards(t *testing.T) {
	t.Parallel()
	// A target that accepts and then never sends or closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c
		}
	}()
	ts := newTestStreams(t, nil)
	c, err := ts.dial(tunnel.Header{Service: tunnel.ServiceTCP, Port: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := <-held
	defer target.Close()
	closed := make(chan struct{})
	go func() { ts.Close(); close(closed) }()
	select {
	case <-closed:
	case <-streamsTestCtx(t).Done():
		t.Fatal("Close hangs on an idle forwarded connection")
	}
	// Both ends were closed.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("stream still open after Close")
	}
}

// TestStreamsIDESocket: the IDE stream reaches a code-server on a socket.
func TestStreamsIDESocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "ide.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, ln)
	ts := newTestStreams(t, func(c *Config) { c.CodeServerAddr = "unix:" + sock })
	c, err := ts.dial(tunnel.Header{Service: tunnel.ServiceIDE})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "GET / HTTP/1.1\r\n\r\n")
}

// Package streams serves the streams the server opens to a workspace
// through its tunnel: SSH (sshd*.go: sessions, SFTP, agent and port
// forwarding), reconnecting web terminals (pty.go), forwarded TCP ports,
// the IDE (code-server) and snapshot jobs. See Streams for what counts as
// activity and how processes end.
package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/supervisor/codeserver"
	"dev8.dev/dev8/internal/supervisor/userenv"
	"dev8.dev/dev8/internal/tunnel"
)

// Defaults for Config.
const (
	DefaultPTYGrace      = 5 * time.Minute
	DefaultPTYScrollback = 64 << 10
)

// hangupGrace is how long a hung-up session's processes get between SIGHUP
// and SIGKILL.
const hangupGrace = 2 * time.Second

// Config configures New. Zero values take defaults.
type Config struct {
	EnvironmentID string
	// WorkspaceDir is the working directory of every command, shell,
	// terminal and of SFTP (relative paths).
	WorkspaceDir string
	// HomeDir is the workspace user's home; the SSH host key is kept at
	// HomeDir/.dev8/ssh_host_ed25519_key unless HostKeyPath says otherwise.
	HomeDir     string
	HostKeyPath string
	// CodeServerAddr is code-server's host:port; empty refuses ServiceIDE.
	CodeServerAddr string
	// Activity is touched when a person uses the workspace (see Streams).
	// Nil: a private one nobody reads.
	Activity *activity.Activity
	Logger   *slog.Logger
	// Shell is the shell for sessions, terminals and `ssh host cmd`.
	// Default: $SHELL of Env, else /bin/bash, else /bin/sh.
	Shell string
	// Env is the environment user processes start from (nil: the
	// supervisor's own). Every DEV8_* variable except DEV8_ENVIRONMENT_ID
	// and DEV8_WORKSPACE_DIR is removed from it: the agent token and other
	// secrets never reach user processes.
	Env []string
	// PTYGrace is how long a web terminal with no client attached stays
	// alive (default 5 minutes); PTYScrollback is how much of its output is
	// replayed to a client that reattaches (default 64 KiB).
	PTYGrace      time.Duration
	PTYScrollback int
}

// Streams serves the streams the server opens to the workspace through the
// tunnel (tunnel.Handler): SSH, reconnecting web terminals, forwarded TCP
// ports and code-server.
//
// # Activity
//
// Only what shows that a person is there touches the Activity; an open but
// idle connection never does, so it cannot keep a workspace running:
//
//   - activity.ActivitySSH: bytes arriving from the SSH client on a session channel
//     (keystrokes, the stdin of a command, SFTP requests, scp and git
//     traffic towards the workspace). SSH keepalives and other global or
//     channel requests, window changes, output sent to the client and an
//     idle connection do not count.
//   - activity.ActivityPTY: a web terminal input message carrying Data (keystrokes).
//     Resizes and output do not count.
//   - activity.ActivityPortFwd: bytes arriving from the person's side of a forwarded
//     connection: what the SSH client sends into a -L (direct-tcpip) or -R
//     (forwarded-tcpip) channel, and what the server sends into a
//     ServiceTCP stream. Bytes flowing back towards the person do not
//     count.
//   - ServiceIDE touches nothing: the workbench's traffic flows whether
//     or not anyone is there. The server counts the IDE's use from the
//     page's input events (internal/gateway/ideactivity.go).
//
// # Processes
//
// Every shell or command runs as the leader of a new session in the
// workspace directory. When it exits, whatever it left running in its
// session is killed; when its client goes away first (SSH channel closed,
// web terminal reaped), the whole session gets SIGHUP, then SIGKILL two
// seconds later. Programs meant to outlive the session must leave it with
// setsid.
type Streams struct {
	cfg   Config
	log   *slog.Logger
	act   *activity.Activity
	env   []string
	shell string

	ssh  *sshServer
	ptys *ptyManager

	// life ends when Close is called.
	life    context.Context
	endLife context.CancelFunc

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

var _ tunnel.Handler = (*Streams)(nil)

// New returns a Streams for the workspace. It loads the SSH host key,
// generating and saving it (0600) on first use.
func New(cfg Config) (*Streams, error) {
	if cfg.WorkspaceDir == "" {
		return nil, errors.New("supervisor: streams: no workspace directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Activity == nil {
		cfg.Activity = activity.NewActivity(nil)
	}
	if cfg.PTYGrace <= 0 {
		cfg.PTYGrace = DefaultPTYGrace
	}
	if cfg.PTYScrollback <= 0 {
		cfg.PTYScrollback = DefaultPTYScrollback
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.HostKeyPath == "" {
		if cfg.HomeDir == "" {
			return nil, errors.New("supervisor: streams: no home directory for the SSH host key")
		}
		cfg.HostKeyPath = filepath.Join(cfg.HomeDir, ".dev8", "ssh_host_ed25519_key")
	}
	s := &Streams{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "streams"),
		act:   cfg.Activity,
		conns: map[net.Conn]struct{}{},
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.env = userenv.Build(cfg.Env, cfg.HomeDir, cfg.EnvironmentID, cfg.WorkspaceDir)
	s.shell = cfg.Shell
	if s.shell == "" {
		s.shell = userenv.DefaultShell(s.env)
	}
	signer, err := loadHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, fmt.Errorf("supervisor: ssh host key: %w", err)
	}
	s.ssh = newSSHServer(s, signer)
	s.ptys = newPTYManager(s)
	return s, nil
}

// ServeStream serves one stream of the tunnel. It returns when the stream is
// done and always closes conn.
func (s *Streams) ServeStream(ctx context.Context, h tunnel.Header, conn net.Conn) {
	defer conn.Close()
	if !s.track(conn) {
		_ = tunnel.WriteReply(conn, tunnel.Reply{Error: "the workspace is shutting down"})
		return
	}
	defer s.untrack(conn)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	switch h.Service {
	case tunnel.ServiceSSH:
		if tunnel.WriteReply(conn, tunnel.Reply{OK: true}) != nil {
			return
		}
		s.ssh.srv.HandleConn(conn)
	case tunnel.ServicePTY:
		s.ptys.serve(ctx, h, conn)
	case tunnel.ServiceTCP:
		if h.Port <= 0 || h.Port > 65535 {
			refuse(conn, fmt.Sprintf("invalid port %d", h.Port))
			return
		}
		s.serveDial(ctx, conn, net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)), activity.ActivityPortFwd)
	case tunnel.ServiceIDE:
		if s.cfg.CodeServerAddr == "" {
			refuse(conn, "this workspace has no IDE")
			return
		}
		s.serveDial(ctx, conn, s.cfg.CodeServerAddr, "")
	case tunnel.ServiceSnapshot:
		s.serveSnapshot(ctx, conn)
	default:
		refuse(conn, fmt.Sprintf("unknown service %q", h.Service))
	}
}

// Close ends every stream, SSH session and web terminal, kills their
// processes and returns once they are gone. Streams opened afterwards are
// refused.
func (s *Streams) Close() error {
	s.endLife()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	_ = s.ssh.srv.Close()
	s.ptys.closeAll()
	s.wg.Wait()
	return nil
}

// Active is how many streams are open (for /status).
func (s *Streams) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// track registers a stream so Close can end it; false once closed.
func (s *Streams) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Streams) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// hold counts a goroutine that Close must wait for; false once closed.
func (s *Streams) hold() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func refuse(conn net.Conn, reason string) {
	_ = tunnel.WriteReply(conn, tunnel.Reply{Error: reason})
}

// serveDial connects the stream to addr on the workspace's loopback.
func (s *Streams) serveDial(ctx context.Context, conn net.Conn, addr, kind string) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.life, cancel)
	defer stop()
	d := net.Dialer{Timeout: 10 * time.Second}
	network, address := codeserver.DialTarget(addr) // code-server may be on a unix socket
	target, err := d.DialContext(ctx, network, address)
	if err != nil {
		refuse(conn, fmt.Sprintf("nothing answers on %s in the workspace", addr))
		return
	}
	defer target.Close()
	if tunnel.WriteReply(conn, tunnel.Reply{OK: true}) != nil {
		return
	}
	var in io.Reader = conn
	if kind != "" {
		in = &touchReader{r: conn, act: s.act, kind: kind}
	}
	join(ctx, conn, in, target)
}

// touchReader touches the Activity whenever bytes are read through it.
type touchReader struct {
	r    io.Reader
	act  *activity.Activity
	kind string
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.act.Touch(t.kind)
	}
	return n, err
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c io.Closer) {
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// join copies clientIn (the client's side, read through a touchReader or
// not) to target and target to client until both directions are done,
// half-closing each side when its input ends. ctx ending closes both.
func join(ctx context.Context, client io.ReadWriteCloser, clientIn io.Reader, target io.ReadWriteCloser) {
	stop := context.AfterFunc(ctx, func() { _ = client.Close(); _ = target.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(target, clientIn)
		closeWrite(target)
	}()
	_, _ = io.Copy(client, target)
	closeWrite(client)
	<-done
	_ = client.Close()
	_ = target.Close()
}

// sessionEnv is the environment of a new session or terminal, built now so
// that it has what the latest manifest delivered.
func (s *Streams) sessionEnv() []string {
	return userenv.Build(s.cfg.Env, s.cfg.HomeDir, s.cfg.EnvironmentID, s.cfg.WorkspaceDir)
}

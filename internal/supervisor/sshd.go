package supervisor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/creack/pty"
	gliderssh "github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
)

// The workspace's SSH server. Each tunnel stream of ServiceSSH is one SSH
// connection, already authenticated by the server with the user's Dev8
// token, so clients get in with "none" authentication under any user name
// and need no key. Sessions (shell, exec, sftp subsystem), local and remote
// port forwarding and agent forwarding are served; X11 forwarding is not.
//
// gliderlabs/ssh runs the connections; sessions and forwarding have handlers
// of their own here, for the activity rule (see Streams), exit signals,
// untranslated PTY output and process-session cleanup.

// loadHostKey reads the ed25519 host key at path, generating it (0600, with
// path+".pub" beside it) if it does not exist yet, so the key a client pins
// stays the same across restarts.
func loadHostKey(path string) (gossh.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		return gossh.ParsePrivateKey(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "dev8 workspace host key")
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".ssh_host_key-*") // 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Link, not rename: if another process created the key meanwhile, keep
	// theirs.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	return signer, nil
}

type sshServer struct {
	s   *Streams
	srv *gliderssh.Server
}

type fwdKey struct{}

func newSSHServer(s *Streams, signer gossh.Signer) *sshServer {
	x := &sshServer{s: s}
	// Algorithms are x/crypto's defaults. The client's order picks the
	// cipher, and on amd64 x/crypto's AES-GCM uses the CPU's AES
	// instructions while its chacha20-poly1305 (OpenSSH's first choice)
	// has no assembly: so dev8 ssh (x/crypto, AES-GCM first) and the Host
	// blocks of dev8 config-ssh ask for AES-GCM first (docs/benchmarks.md,
	// tunnel throughput). chacha20-poly1305 stays offered for the clients
	// that want it.
	x.srv = &gliderssh.Server{
		HostSigners: []gliderssh.Signer{signer},
		Version:     "Dev8",
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":      x.handleSession,
			"direct-tcpip": x.handleDirectTCPIP,
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{
			"tcpip-forward":        x.handleTCPIPForward,
			"cancel-tcpip-forward": x.handleCancelTCPIPForward,
		},
		// Every request a handler does not know (keepalive@openssh.com,
		// no-more-sessions@openssh.com, ...) is answered "failure", which
		// is all a keepalive needs; none of them counts as activity.
		ConnCallback: func(ctx gliderssh.Context, c net.Conn) net.Conn {
			f := &remoteForwards{}
			ctx.SetValue(fwdKey{}, f)
			context.AfterFunc(ctx, f.closeAll)
			return c
		},
		ConnectionFailedCallback: func(_ net.Conn, err error) {
			s.log.Debug("ssh handshake failed", "err", err)
		},
	}
	return x
}

// ---- sessions ----

type sshSession struct {
	x    *sshServer
	conn *gossh.ServerConn
	ch   gossh.Channel
	in   io.Reader // ch, touching ActivitySSH

	env     []string
	ptyReq  *ptyRequest
	agent   bool
	replied chan struct{} // closed once the start request was answered

	mu      sync.Mutex
	started bool
	proc    *sessionProc
	master  *os.File
	size    pty.Winsize
	done    chan struct{} // closed once the command ended and the channel was closed
	cleanup []func()
}

type ptyRequest struct {
	Term     string
	Columns  uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}

type windowChange struct {
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
}

func (x *sshServer) handleSession(_ *gliderssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, _ gliderssh.Context) {
	if !x.s.hold() {
		_ = nc.Reject(gossh.ResourceShortage, "the workspace is shutting down")
		return
	}
	defer x.s.wg.Done()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	sess := &sshSession{
		x:       x,
		conn:    conn,
		ch:      ch,
		in:      &touchReader{r: ch, act: x.s.act, kind: ActivitySSH},
		replied: make(chan struct{}),
		done:    make(chan struct{}),
	}
	for req := range reqs {
		ok := sess.handleRequest(req)
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		if ok && (req.Type == "shell" || req.Type == "exec" || req.Type == "subsystem") {
			close(sess.replied)
		}
	}
	// The channel is closed: by us once the command ended, or by the client
	// (or its connection) going away while it still runs.
	sess.hangup()
}

func (sess *sshSession) handleRequest(req *gossh.Request) bool {
	sess.mu.Lock()
	started := sess.started
	sess.mu.Unlock()
	switch req.Type {
	case "pty-req":
		var r ptyRequest
		if started || sess.ptyReq != nil || gossh.Unmarshal(req.Payload, &r) != nil {
			return false
		}
		sess.ptyReq = &r
		sess.size = winsize(r.Columns, r.Rows, r.Width, r.Height)
		return true
	case "env":
		var kv struct{ Name, Value string }
		if started || gossh.Unmarshal(req.Payload, &kv) != nil {
			return false
		}
		sess.env = append(sess.env, kv.Name+"="+kv.Value)
		return true
	case "auth-agent-req@openssh.com":
		if started {
			return false
		}
		sess.agent = true
		return true
	case "window-change":
		var w windowChange
		if gossh.Unmarshal(req.Payload, &w) != nil {
			return false
		}
		sess.mu.Lock()
		defer sess.mu.Unlock()
		sess.size = winsize(w.Columns, w.Rows, w.Width, w.Height)
		if sess.master != nil {
			_ = setPTYSize(sess.master, sess.size)
		}
		return true
	case "signal":
		var sig struct{ Signal string }
		if gossh.Unmarshal(req.Payload, &sig) != nil {
			return false
		}
		s, ok := signalByName(sig.Signal)
		sess.mu.Lock()
		p := sess.proc
		sess.mu.Unlock()
		if !ok || p == nil {
			return false
		}
		p.signal(s)
		return true
	case "shell", "exec":
		if started {
			return false
		}
		var command string
		if req.Type == "exec" {
			var c struct{ Command string }
			if gossh.Unmarshal(req.Payload, &c) != nil {
				return false
			}
			command = c.Command
		}
		if err := sess.start(command, req.Type == "exec"); err != nil {
			sess.x.s.log.Warn("ssh: cannot start command", "err", err)
			return false
		}
		return true
	case "subsystem":
		var sub struct{ Name string }
		if started || gossh.Unmarshal(req.Payload, &sub) != nil || sub.Name != "sftp" {
			return false
		}
		sess.mu.Lock()
		sess.started = true
		sess.mu.Unlock()
		go sess.serveSFTP()
		return true
	default:
		// x11-req, break, keepalive@openssh.com, ...
		return false
	}
}

func winsize(cols, rows, w, h uint32) pty.Winsize {
	clamp := func(v uint32) uint16 { return uint16(min(v, 0xffff)) }
	return pty.Winsize{Cols: clamp(cols), Rows: clamp(rows), X: clamp(w), Y: clamp(h)}
}

// commandEnv is the environment of the session's command.
func (sess *sshSession) commandEnv() []string {
	env := sess.x.s.sessionEnv()
	env = append(env, "SHELL="+sess.x.s.shell)
	env = append(env, sess.env...)
	client, server := hostPort(sess.conn.RemoteAddr()), hostPort(sess.conn.LocalAddr())
	env = append(env,
		"SSH_CLIENT="+client[0]+" "+client[1]+" "+server[1],
		"SSH_CONNECTION="+client[0]+" "+client[1]+" "+server[0]+" "+server[1],
	)
	if sess.ptyReq != nil {
		term := sess.ptyReq.Term
		if term == "" {
			term = "xterm-256color"
		}
		env = append(env, "TERM="+term)
	}
	return env
}

// hostPort splits a connection address for SSH_CLIENT and SSH_CONNECTION;
// tunnel streams may have addresses that are not host:port.
func hostPort(a net.Addr) [2]string {
	if a != nil {
		if h, p, err := net.SplitHostPort(a.String()); err == nil {
			if _, err := strconv.Atoi(p); err == nil && net.ParseIP(h) != nil {
				return [2]string{h, p}
			}
		}
	}
	return [2]string{"127.0.0.1", "0"}
}

// start runs the session's command: the shell, or `shell -c command`.
func (sess *sshSession) start(command string, isExec bool) error {
	s := sess.x.s
	var cmd *exec.Cmd
	if isExec {
		cmd = exec.Command(s.shell, "-c", command)
	} else {
		cmd = exec.Command(s.shell)
	}
	cmd.Dir = s.cfg.WorkspaceDir
	cmd.Env = sess.commandEnv()
	if sess.agent {
		sock, stop, err := sess.forwardAgent()
		if err != nil {
			s.log.Warn("ssh: agent forwarding unavailable", "err", err)
		} else {
			cmd.Env = append(cmd.Env, "SSH_AUTH_SOCK="+sock)
			sess.cleanup = append(sess.cleanup, stop)
		}
	}
	var err error
	if sess.ptyReq != nil {
		err = sess.startPTY(cmd)
	} else {
		err = sess.startPipes(cmd)
	}
	if err != nil {
		sess.runCleanup()
		return err
	}
	return nil
}

func (sess *sshSession) startPTY(cmd *exec.Cmd) error {
	master, tty, err := openPTY(&sess.size)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, "SSH_TTY="+tty.Name())
	p, err := startSessionProc(cmd, tty)
	_ = tty.Close()
	if err != nil {
		_ = master.Close()
		return err
	}
	sess.mu.Lock()
	sess.started, sess.proc, sess.master = true, p, master
	// A window-change may have come between pty-req and now.
	_ = setPTYSize(master, sess.size)
	sess.mu.Unlock()

	go func() { _, _ = io.Copy(master, sess.in) }()
	out := make(chan struct{})
	go func() {
		defer close(out)
		drain(sess.ch, master, p.exited)
	}()
	go sess.finish(p, out, func() {
		sess.mu.Lock()
		sess.master = nil
		sess.mu.Unlock()
		_ = master.Close()
	})
	return nil
}

func (sess *sshSession) startPipes(cmd *exec.Cmd) error {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		closeAll()
		return err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	p, err := startSessionProc(cmd, nil)
	// The child has its ends now.
	_ = inR.Close()
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		_ = errR.Close()
		return err
	}
	sess.mu.Lock()
	sess.started, sess.proc = true, p
	sess.mu.Unlock()

	go func() {
		_, _ = io.Copy(inW, sess.in)
		_ = inW.Close()
	}()
	out := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); drain(sess.ch, outR, p.exited) }()
	go func() { defer wg.Done(); drain(sess.ch.Stderr(), errR, p.exited) }()
	go func() { wg.Wait(); close(out) }()
	go sess.finish(p, out, func() {
		_ = inW.Close()
		_ = outR.Close()
		_ = errR.Close()
	})
	return nil
}

// drainIdle bounds how long output is waited for once the command has
// exited and its session was killed: only a process that left the session
// can still hold the output open then.
const drainIdle = 2 * time.Second

// drain copies src to dst until src ends. Once exited is closed, a read
// that waits more than drainIdle for data ends the copy.
func drain(dst io.Writer, src *os.File, exited <-chan struct{}) {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-exited:
			_ = src.SetReadDeadline(time.Now().Add(drainIdle))
		case <-stop:
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-exited:
			_ = src.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// finish waits for the command and its output, reports how it ended and
// closes the channel.
func (sess *sshSession) finish(p *sessionProc, out <-chan struct{}, release func()) {
	<-p.reaped
	<-out
	release()
	sess.runCleanup()
	<-sess.replied
	_ = sess.ch.CloseWrite()
	code, sig, core := exitStatus(p.state)
	if sig != "" {
		_, _ = sess.ch.SendRequest("exit-signal", false, gossh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Message    string
			Lang       string
		}{sig, core, "", ""}))
	} else {
		_, _ = sess.ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(code)}))
	}
	_ = sess.ch.Close()
	close(sess.done)
}

// hangup runs once the channel is closed. If the command is still running,
// its client is gone: the session is hung up and its processes end.
func (sess *sshSession) hangup() {
	sess.mu.Lock()
	p, started := sess.proc, sess.started
	sess.mu.Unlock()
	// Unblock finish should the start request never have been answered.
	select {
	case <-sess.replied:
	default:
		close(sess.replied)
	}
	if p != nil {
		p.hangup(hangupGrace)
	}
	if started {
		<-sess.done
	}
}

func (sess *sshSession) runCleanup() {
	sess.mu.Lock()
	fs := sess.cleanup
	sess.cleanup = nil
	sess.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// serveSFTP serves the sftp subsystem in-process, with the workspace
// directory as the start directory. scp of OpenSSH 9 uses it too.
func (sess *sshSession) serveSFTP() {
	// The server's Close must not close the channel: the exit status
	// still has to go out on it.
	rwc := struct {
		io.Reader
		io.Writer
		io.Closer
	}{sess.in, sess.ch, nopCloser{}}
	code := 0
	// WithAllocator reuses each session's packet buffers (256 KiB pages,
	// a few per request in flight, dropped when the session ends) instead
	// of allocating one per packet: an scp through the tunnel took 0.6 s
	// less supervisor CPU per GB, most of it the GC (docs/benchmarks.md).
	// pkg/sftp calls it experimental; TestOpenSSH copies 50 MB both ways
	// through it.
	srv, err := sftp.NewServer(rwc, sftp.WithServerWorkingDirectory(sess.x.s.cfg.WorkspaceDir), sftp.WithAllocator())
	if err == nil {
		if err = srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
			code = 1
		}
		_ = srv.Close()
	} else {
		code = 1
	}
	if code != 0 {
		sess.x.s.log.Debug("sftp ended", "err", err)
	}
	<-sess.replied
	_, _ = sess.ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(code)}))
	_ = sess.ch.Close()
	close(sess.done)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// forwardAgent listens on a private Unix socket whose connections are
// carried to the client's agent (auth-agent@openssh.com channels). stop
// closes it.
func (sess *sshSession) forwardAgent() (sock string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "dev8-agent-") // 0700
	if err != nil {
		return "", nil, err
	}
	sock = filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, reqs, err := sess.conn.OpenChannel("auth-agent@openssh.com", nil)
				if err != nil {
					_ = c.Close()
					return
				}
				go gossh.DiscardRequests(reqs)
				join(context.Background(), c, c, ch)
			}()
		}
	}()
	return sock, func() { _ = ln.Close(); _ = os.RemoveAll(dir) }, nil
}

// ---- port forwarding ----

// handleDirectTCPIP serves `ssh -L`: a connection from the client to a
// host:port as seen from the workspace.
func (x *sshServer) handleDirectTCPIP(_ *gliderssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, ctx gliderssh.Context) {
	var d struct {
		DestAddr   string
		DestPort   uint32
		OriginAddr string
		OriginPort uint32
	}
	if err := gossh.Unmarshal(nc.ExtraData(), &d); err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if !x.s.hold() {
		_ = nc.Reject(gossh.ResourceShortage, "the workspace is shutting down")
		return
	}
	defer x.s.wg.Done()
	dialer := net.Dialer{Timeout: 10 * time.Second}
	target, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(d.DestAddr, strconv.FormatUint(uint64(d.DestPort), 10)))
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	join(ctx, ch, &touchReader{r: ch, act: x.s.act, kind: ActivityPortFwd}, target)
}

// remoteForwards are the `ssh -R` listeners of one connection.
type remoteForwards struct {
	mu     sync.Mutex
	closed bool
	fwds   []*remoteForward
}

type remoteForward struct {
	bindAddr  string
	reqPort   uint32
	port      uint32
	ln        net.Listener
	closeOnce sync.Once
}

func (f *remoteForward) close() { f.closeOnce.Do(func() { _ = f.ln.Close() }) }

func (r *remoteForwards) add(f *remoteForward) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.fwds = append(r.fwds, f)
	return true
}

func (r *remoteForwards) remove(bindAddr string, port uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range r.fwds {
		if f.bindAddr == bindAddr && (f.port == port || (f.reqPort == port && port != 0)) {
			f.close()
			r.fwds = append(r.fwds[:i], r.fwds[i+1:]...)
			return true
		}
	}
	return false
}

func (r *remoteForwards) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, f := range r.fwds {
		f.close()
	}
	r.fwds = nil
}

// handleTCPIPForward serves `ssh -R`: it listens on the workspace's loopback
// (127.0.0.1, whatever bind address the client asked for) and carries each
// connection to the client.
func (x *sshServer) handleTCPIPForward(ctx gliderssh.Context, _ *gliderssh.Server, req *gossh.Request) (bool, []byte) {
	var r struct {
		BindAddr string
		BindPort uint32
	}
	if gossh.Unmarshal(req.Payload, &r) != nil || r.BindPort > 65535 {
		return false, nil
	}
	fwds, _ := ctx.Value(fwdKey{}).(*remoteForwards)
	conn, _ := ctx.Value(gliderssh.ContextKeyConn).(*gossh.ServerConn)
	if fwds == nil || conn == nil {
		return false, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(r.BindPort), 10)))
	if err != nil {
		x.s.log.Debug("ssh: remote forward refused", "port", r.BindPort, "err", err)
		return false, nil
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	f := &remoteForward{bindAddr: r.BindAddr, reqPort: r.BindPort, port: port, ln: ln}
	if !fwds.add(f) {
		f.close()
		return false, nil
	}
	go x.acceptForwarded(ctx, conn, f)
	if r.BindPort == 0 {
		return true, gossh.Marshal(struct{ Port uint32 }{port})
	}
	return true, nil
}

func (x *sshServer) handleCancelTCPIPForward(ctx gliderssh.Context, _ *gliderssh.Server, req *gossh.Request) (bool, []byte) {
	var r struct {
		BindAddr string
		BindPort uint32
	}
	if gossh.Unmarshal(req.Payload, &r) != nil {
		return false, nil
	}
	fwds, _ := ctx.Value(fwdKey{}).(*remoteForwards)
	return fwds != nil && fwds.remove(r.BindAddr, r.BindPort), nil
}

func (x *sshServer) acceptForwarded(ctx context.Context, conn *gossh.ServerConn, f *remoteForward) {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !x.s.hold() {
			_ = c.Close()
			return
		}
		go func() {
			defer x.s.wg.Done()
			origin := c.RemoteAddr().(*net.TCPAddr)
			payload := gossh.Marshal(struct {
				DestAddr   string
				DestPort   uint32
				OriginAddr string
				OriginPort uint32
			}{f.bindAddr, f.port, origin.IP.String(), uint32(origin.Port)})
			ch, reqs, err := conn.OpenChannel("forwarded-tcpip", payload)
			if err != nil {
				_ = c.Close()
				return
			}
			go gossh.DiscardRequests(reqs)
			join(ctx, ch, &touchReader{r: ch, act: x.s.act, kind: ActivityPortFwd}, c)
		}()
	}
}

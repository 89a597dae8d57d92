package streams

import (
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"github.com/creack/pty"
	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/supervisor/sessionproc"
)

// SSH sessions: shells, commands and their processes.

type sshSession struct {
	x    *sshServer
	conn *gossh.ServerConn
	ch   gossh.Channel
	in   io.Reader // ch, touching activity.ActivitySSH

	env     []string
	ptyReq  *ptyRequest
	agent   bool
	replied chan struct{} // closed once the start request was answered

	mu      sync.Mutex
	started bool
	proc    *sessionproc.Proc
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
		in:      &touchReader{r: ch, act: x.s.act, kind: activity.ActivitySSH},
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
			_ = sessionproc.SetPTYSize(sess.master, sess.size)
		}
		return true
	case "signal":
		var sig struct{ Signal string }
		if gossh.Unmarshal(req.Payload, &sig) != nil {
			return false
		}
		s, ok := sessionproc.SignalByName(sig.Signal)
		sess.mu.Lock()
		p := sess.proc
		sess.mu.Unlock()
		if !ok || p == nil {
			return false
		}
		p.Signal(s)
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
	master, tty, err := sessionproc.OpenPTY(&sess.size)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, "SSH_TTY="+tty.Name())
	p, err := sessionproc.Start(cmd, tty)
	_ = tty.Close()
	if err != nil {
		_ = master.Close()
		return err
	}
	sess.mu.Lock()
	sess.started, sess.proc, sess.master = true, p, master
	// A window-change may have come between pty-req and now.
	_ = sessionproc.SetPTYSize(master, sess.size)
	sess.mu.Unlock()

	go func() { _, _ = io.Copy(master, sess.in) }()
	out := make(chan struct{})
	go func() {
		defer close(out)
		sessionproc.Drain(sess.ch, master, p.Exited())
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
	p, err := sessionproc.Start(cmd, nil)
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
	go func() { defer wg.Done(); sessionproc.Drain(sess.ch, outR, p.Exited()) }()
	go func() { defer wg.Done(); sessionproc.Drain(sess.ch.Stderr(), errR, p.Exited()) }()
	go func() { wg.Wait(); close(out) }()
	go sess.finish(p, out, func() {
		_ = inW.Close()
		_ = outR.Close()
		_ = errR.Close()
	})
	return nil
}

// finish waits for the command and its output, reports how it ended and
// closes the channel.
func (sess *sshSession) finish(p *sessionproc.Proc, out <-chan struct{}, release func()) {
	<-p.Reaped()
	<-out
	release()
	sess.runCleanup()
	<-sess.replied
	_ = sess.ch.CloseWrite()
	code, sig, core := sessionproc.ExitStatus(p.State())
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
		p.Hangup(hangupGrace)
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

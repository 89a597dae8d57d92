// Package sessionproc runs the commands of SSH sessions and web terminals:
// each as the leader of a session of its own, on a pseudo-terminal or on
// pipes, signalled and hung up as a whole session, with its output drained
// until it is done.
package sessionproc

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Proc is a command started by an SSH session or a web terminal. It
// runs in its own session (setsid), so its session id and process group id
// are its pid. When it exits on its own, what it started in the background
// keeps running, as under OpenSSH: `nohup server &` and the servers VS Code
// Remote-SSH and similar tools start that way must survive the command that
// started them. When its client goes away while it still runs, the session
// is hung up (SIGHUP, then SIGKILL after a grace period), as a closed
// terminal would.
type Proc struct {
	cmd *exec.Cmd
	pid int

	// exited is closed when the leader has exited (it is then an unreaped
	// zombie, so its pid, the session id, cannot be reused yet); reaped is
	// closed once it was reaped and state is set.
	exited chan struct{}
	reaped chan struct{}
	state  *os.ProcessState

	mu   sync.Mutex
	gone bool // leader exited: what is left in its session is no longer ours to signal
}

// Start starts cmd as the leader of a new session. If tty is not
// nil it becomes the controlling terminal and stdin, stdout and stderr.
func Start(cmd *exec.Cmd, tty *os.File) (*Proc, error) {
	attr := &syscall.SysProcAttr{Setsid: true}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		attr.Setctty = true
		attr.Ctty = 0 // the child's fd 0, i.e. tty
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		exited: make(chan struct{}),
		reaped: make(chan struct{}),
	}
	go p.wait()
	return p, nil
}

// Pid is the leader's pid, which is also its session and process group id.
func (p *Proc) Pid() int { return p.pid }

// Exited is closed when the leader has exited (before it is reaped).
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Reaped is closed once the leader was reaped; State is set then.
func (p *Proc) Reaped() <-chan struct{} { return p.reaped }

// State is how the leader ended; nil until Reaped is closed.
func (p *Proc) State() *os.ProcessState {
	select {
	case <-p.reaped:
		return p.state
	default:
		return nil
	}
}

func (p *Proc) wait() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	close(p.exited)
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
	_ = p.cmd.Wait()
	p.state = p.cmd.ProcessState
	close(p.reaped)
}

// Signal sends sig to the leader's process group (the foreground of a
// non-interactive command).
func (p *Proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.gone {
		_ = unix.Kill(-p.pid, sig)
	}
}

// Hangup ends the session as a closed terminal would: SIGHUP (and SIGCONT
// for stopped jobs) to every process in it, then SIGKILL after grace if the
// leader is still there. It returns once the leader is reaped.
func (p *Proc) Hangup(grace time.Duration) {
	p.mu.Lock()
	if !p.gone {
		signalSession(p.pid, unix.SIGHUP)
		signalSession(p.pid, unix.SIGCONT)
	}
	p.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.mu.Lock()
		if !p.gone {
			signalSession(p.pid, unix.SIGKILL)
		}
		p.mu.Unlock()
	}
	<-p.reaped
}

// signalSession sends sig to the process group sid and to every other
// process whose session id is sid (job-control shells put jobs in groups of
// their own). The caller guarantees the session leader is not yet reaped.
func signalSession(sid int, sig syscall.Signal) {
	_ = unix.Kill(-sid, sig)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid <= 1 {
			continue
		}
		if s, err := unix.Getsid(pid); err == nil && s == sid {
			_ = unix.Kill(pid, sig)
		}
	}
}

// OpenPTY opens a pseudo-terminal pair. The master is returned in
// non-blocking mode registered with Go's poller, so that Close and read
// deadlines interrupt a pending Read (creack/pty hands back a master whose
// Fd() was called, i.e. blocking).
func OpenPTY(size *pty.Winsize) (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		_ = tty.Close()
		return nil, nil, err
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if size != nil {
		if err := SetPTYSize(master, *size); err != nil {
			_ = master.Close()
			_ = tty.Close()
			return nil, nil, err
		}
	}
	return master, tty, nil
}

// SetPTYSize resizes the terminal. It goes through SyscallConn so that it
// is safe while the master is being closed; a zero size is ignored.
func SetPTYSize(master *os.File, size pty.Winsize) error {
	if size.Rows == 0 || size.Cols == 0 {
		return nil
	}
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols, Xpixel: size.X, Ypixel: size.Y}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ioErr
}

// ExitStatus describes how a reaped process ended, for SSH: the exit code,
// or the name of the signal that killed it (without "SIG") and whether it
// dumped core.
func ExitStatus(st *os.ProcessState) (code int, signal string, core bool) {
	if st == nil {
		return 255, "", false
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return st.ExitCode(), "", false
	}
	name := unix.SignalName(ws.Signal())
	if len(name) > 3 {
		name = name[3:]
	} else {
		// Unnamed (real-time) signal: report it the way a shell would.
		return 128 + int(ws.Signal()), "", false
	}
	return 128 + int(ws.Signal()), name, ws.CoreDump()
}

// SignalByName maps an SSH signal name (RFC 4254 6.10, "TERM") to a signal.
func SignalByName(name string) (syscall.Signal, bool) {
	s := unix.SignalNum("SIG" + name)
	return s, s != 0
}

// drainIdle bounds how long output is waited for once the command has
// exited and its session was killed: only a process that left the session
// can still hold the output open then.
const drainIdle = 2 * time.Second

// Drain copies src to dst until src ends. Once exited is closed, a read
// that waits more than drainIdle for data ends the copy.
func Drain(dst io.Writer, src *os.File, exited <-chan struct{}) {
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

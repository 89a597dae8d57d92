package streams

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/tunnel"
)

// sshClient connects an x/crypto SSH client through a ServiceSSH stream,
// with no key (the stream is authenticated by the server).
func (ts *testStreams) sshClient(t *testing.T) *gossh.Client {
	t.Helper()
	conn, err := ts.dial(tunnel.Header{Service: tunnel.ServiceSSH})
	if err != nil {
		t.Fatal(err)
	}
	// A hang fails the test instead of the whole run.
	conn.SetDeadline(time.Now().Add(90 * time.Second))
	c, chans, reqs, err := gossh.NewClientConn(conn, "workspace", &gossh.ClientConfig{
		User:            "whoever",
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := gossh.NewClient(c, chans, reqs)
	t.Cleanup(func() { client.Close() })
	return client
}

func newSession(t *testing.T, c *gossh.Client) *gossh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSSHExec(t *testing.T) {
	t.Parallel()
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)

	s := newSession(t, c)
	var out, errOut bytes.Buffer
	s.Stdout, s.Stderr = &out, &errOut
	err := s.Run("sh -c 'echo hi; echo oops >&2; exit 3'")
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Fatalf("exit: %v", err)
	}
	if out.String() != "hi\n" || errOut.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}

	// Environment: the session's env reaches the command, the agent token
	// and other DEV8_ configuration do not, the workspace is the cwd.
	s = newSession(t, c)
	if err := s.Setenv("GREETING", "hello there"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Output(`echo "$GREETING|${DEV8_AGENT_TOKEN-unset}|${DEV8_SUPERVISOR_ADDR-unset}|$DEV8_ENVIRONMENT_ID|$(pwd)"; env | grep -c s3cret || true`)
	if err != nil {
		t.Fatal(err)
	}
	want := "hello there|unset|unset|env-test|" + ts.workspace + "\n0\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Killed by a signal: exit-signal.
	s = newSession(t, c)
	err = s.Run("kill -TERM $$")
	if !errors.As(err, &exit) || exit.Signal() != "TERM" {
		t.Errorf("want exit-signal TERM, got %v", err)
	}

	// stdin reaches the command and counts as activity.
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Fatalf("activity before any input")
	}
	s = newSession(t, c)
	s.Stdin = strings.NewReader("from stdin")
	got, err = s.Output("cat")
	if err != nil || string(got) != "from stdin" {
		t.Errorf("cat: %q %v", got, err)
	}
	if last, kind := ts.act.Last(); last.IsZero() || kind != activity.ActivitySSH {
		t.Errorf("activity = %v %q, want ssh", last, kind)
	}
}

func TestSSHPTYShell(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	s := newSession(t, c)
	if err := s.RequestPty("xterm-256color", 40, 100, gossh.TerminalModes{gossh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := collectOutput(stdout)
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "echo $((6*7))\n")
	out.waitFor(ctx, t, "42")
	fmt.Fprintf(stdin, "echo T=$TERM; stty size\n")
	out.waitFor(ctx, t, "T=xterm-256color")
	out.waitFor(ctx, t, "40 100")
	if err := s.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	// The resize travels as an SSH request, apart from the channel's data,
	// so a command typed right after it may run first: ask until the shell
	// sees the new size. Each answer ends with a marker that only the
	// shell's output contains (the echoed command line shows $((…))).
	for i := 1; ; i++ {
		fmt.Fprintf(stdin, "stty size; tty; echo size-check-$((%d+1))\n", i-1)
		answer := out.waitFor(ctx, t, fmt.Sprintf("size-check-%d", i))
		if strings.Contains(answer, "50 132") {
			if !strings.Contains(answer, "/dev/pts/") {
				t.Fatalf("tty: %q", answer)
			}
			break
		}
	}
	fmt.Fprintf(stdin, "exit 5\n")
	var exit *gossh.ExitError
	if err := s.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 5 {
		t.Errorf("shell exit: %v", err)
	}
}

func TestSSHSFTP(t *testing.T) {
	t.Parallel()
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	wd, err := sc.Getwd()
	if err != nil || wd != ts.workspace {
		t.Errorf("sftp working directory %q %v, want %q", wd, err, ts.workspace)
	}
	data := make([]byte, 1<<20+123)
	rand.Read(data)
	f, err := sc.Create("dir-less.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(ts.workspace, "dir-less.bin"))
	if err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("file on disk differs (%v)", err)
	}
	f, err = sc.Open("dir-less.bin")
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back differs (%v)", err)
	}
	if _, kind := ts.act.Last(); kind != activity.ActivitySSH {
		t.Errorf("sftp activity kind %q", kind)
	}
}

func TestSSHLocalForward(t *testing.T) {
	t.Parallel()
	echo := startEchoServer(t)
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	conn, err := c.Dial("tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Errorf("opening a forward touched activity")
	}
	for i := range 3 {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q %v", got, err)
		}
	}
	if last, kind := ts.act.Last(); last.IsZero() || kind != activity.ActivityPortFwd {
		t.Errorf("activity = %v %q, want port", last, kind)
	}
	// Nothing listening: the channel is refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := c.Dial("tcp", closed); err == nil {
		t.Error("forward to a closed port was accepted")
	}
}

func TestSSHRemoteForward(t *testing.T) {
	t.Parallel()
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	// The client asks for every interface; the workspace binds loopback.
	ln, err := c.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if port == 0 {
		t.Fatal("no port allocated")
	}
	accepted := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer conn.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(conn, b); err != nil {
			accepted <- err
			return
		}
		_, err = conn.Write([]byte("got:" + string(b)))
		accepted <- err
	}()
	// A process in the workspace connects to the forwarded port.
	wc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	wc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := wc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 9)
	if _, err := io.ReadFull(wc, reply); err != nil || string(reply) != "got:hello" {
		t.Fatalf("reply %q %v", reply, err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	if _, kind := ts.act.Last(); kind != activity.ActivityPortFwd {
		t.Errorf("activity kind %q, want port", kind)
	}
	// Not bound beyond loopback: the same port on another address is free.
	// (Listening, not dialing: a dial to a free loopback port can connect
	// to itself.)
	if ip := nonLoopbackIP(); ip != nil {
		other, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err != nil {
			t.Errorf("remote forward also bound on %s: %v", ip, err)
		} else {
			other.Close()
		}
	}
	// Cancelling closes the listener in the workspace (the client waits
	// for the reply to cancel-tcpip-forward).
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Errorf("forwarded port still taken after cancel: %v", err)
	} else {
		again.Close()
	}
}

func nonLoopbackIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

func TestSSHActivityRule(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	for range 5 {
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A session with a PTY, a resize and output but no input.
	s := newSession(t, c)
	if err := s.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatal(err)
	}
	stdin, _ := s.StdinPipe()
	stdout, _ := s.StdoutPipe()
	out := collectOutput(stdout)
	if err := s.Start("echo ready; read line; echo got=$line"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(ctx, t, "ready")
	if err := s.WindowChange(30, 90); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	if last, kind := ts.act.Last(); !last.IsZero() {
		t.Fatalf("idle connection touched activity (%q)", kind)
	}
	fmt.Fprintf(stdin, "typed\n")
	out.waitFor(ctx, t, "got=typed")
	if last, kind := ts.act.Last(); last.IsZero() || kind != activity.ActivitySSH {
		t.Errorf("activity after typing = %v %q", last, kind)
	}
	if err := s.Wait(); err != nil {
		t.Error(err)
	}
}

func TestSSHSessionProcessesEnd(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)

	// The command exits, leaving a background job holding its stdout: the
	// session still ends, and the job keeps running, as under OpenSSH (tools
	// such as VS Code Remote-SSH start their servers this way).
	s := newSession(t, c)
	out, err := s.Output("sleep 1000 & echo $!")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("the background job did not survive its command: %v", err)
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	waitProcessGone(ctx, t, pid)

	// The client goes away while the command runs: its session is hung up.
	s = newSession(t, c)
	stdout, _ := s.StdoutPipe()
	o := collectOutput(stdout)
	if err := s.Start("sleep 1000 & echo bg=$! fg=$$; wait"); err != nil {
		t.Fatal(err)
	}
	line := o.waitFor(ctx, t, "\n")
	var bg, fg int
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "bg=%d fg=%d", &bg, &fg); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	s.Close()
	waitProcessGone(ctx, t, bg)
	waitProcessGone(ctx, t, fg)
}

func TestStreamsCloseKillsSessions(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	c := ts.sshClient(t)
	s := newSession(t, c)
	stdout, _ := s.StdoutPipe()
	o := collectOutput(stdout)
	if err := s.Start("echo pid=$$; exec sleep 1000"); err != nil {
		t.Fatal(err)
	}
	line := o.waitFor(ctx, t, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid=")))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(ctx, t, pid)
	if _, err := ts.dial(tunnel.Header{Service: tunnel.ServiceSSH}); err == nil {
		t.Error("stream accepted after Close")
	}
}

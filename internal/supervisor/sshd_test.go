package supervisor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

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
	if last, kind := ts.act.Last(); last.IsZero() || kind != ActivitySSH {
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
	if _, kind := ts.act.Last(); kind != ActivitySSH {
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
	if last, kind := ts.act.Last(); last.IsZero() || kind != ActivityPortFwd {
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
	if _, kind := ts.act.Last(); kind != ActivityPortFwd {
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
	if last, kind := ts.act.Last(); last.IsZero() || kind != ActivitySSH {
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

// ---- the real OpenSSH client ----

func needOpenSSH(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ssh", "scp", "sftp", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (apt-get install openssh-client)", tool)
			}
			t.Skipf("%s not installed (apt-get install openssh-client)", tool)
		}
	}
}

// sshProxy stands in for the Dev8 server: plain TCP in, a ServiceSSH
// stream out. It returns the port OpenSSH should connect to.
func (ts *testStreams) sshProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := ts.dial(tunnel.Header{Service: tunnel.ServiceSSH})
				if err != nil {
					return
				}
				join(context.Background(), c, c, up)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// openSSH runs an OpenSSH tool with no keys, no config and no agent unless
// env brings one.
func openSSH(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func sshOpts(port string) []string {
	return []string{
		"-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR",
		"-o", "Port=" + port,
	}
}

func TestOpenSSHClient(t *testing.T) {
	t.Parallel()
	needOpenSSH(t)
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	port := ts.sshProxy(t)
	local := t.TempDir()

	t.Run("none auth and pwd", func(t *testing.T) {
		// The first LogLevel given wins.
		args := append([]string{"-o", "LogLevel=VERBOSE"}, sshOpts(port)...)
		args = append(args, "dev@127.0.0.1", "pwd")
		out, errOut, err := openSSH(ctx, t, local, nil, "ssh", args...)
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, errOut)
		}
		if out != ts.workspace+"\n" {
			t.Errorf("pwd = %q, want %q", out, ts.workspace)
		}
		if !strings.Contains(errOut, `using "none"`) {
			t.Errorf("not authenticated with none:\n%s", errOut)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		_, errOut, err := openSSH(ctx, t, local, nil, "ssh", append(sshOpts(port), "dev@127.0.0.1", "exit 7")...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 7 {
			t.Errorf("ssh exit: %v %s", err, errOut)
		}
	})

	t.Run("interactive pty", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, "ssh", append(sshOpts(port), "-tt", "dev@127.0.0.1")...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "TERM=vt100"}
		cmd.Stdin = strings.NewReader("echo tty=$TERM:$((6*7)); exit 4\n")
		out, err := cmd.Output()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 4 {
			t.Errorf("ssh -tt exit: %v", err)
		}
		if !strings.Contains(string(out), "tty=vt100:42") {
			t.Errorf("ssh -tt output %q", out)
		}
	})

	t.Run("local forward", func(t *testing.T) {
		// -W is a direct-tcpip channel on stdio.
		echo := startEchoServer(t)
		cmd := exec.CommandContext(ctx, "ssh", append(sshOpts(port), "-W", echo, "dev@127.0.0.1")...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader("through the tunnel")
		out, err := cmd.Output()
		if err != nil || string(out) != "through the tunnel" {
			t.Errorf("ssh -W: %q %v", out, err)
		}
	})

	t.Run("remote forward", func(t *testing.T) {
		echo := startEchoServer(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fwd := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		script := fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/%d; echo ping-remote >&3; head -n1 <&3`, fwd)
		args := append(sshOpts(port), "-o", "ExitOnForwardFailure=yes", "-R", fmt.Sprintf("%d:%s", fwd, echo), "dev@127.0.0.1", script)
		out, errOut, err := openSSH(ctx, t, local, nil, "ssh", args...)
		if err != nil || out != "ping-remote\n" {
			t.Errorf("ssh -R: %q %v %s", out, err, errOut)
		}
	})

	big := make([]byte, 5<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(local, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct{ name, flag string }{{"sftp protocol", "-s"}, {"legacy scp protocol", "-O"}} {
		t.Run("scp "+mode.name, func(t *testing.T) {
			remote := "in-" + mode.flag[1:] + ".bin"
			args := append(sshOpts(port), mode.flag, "big.bin", "dev@127.0.0.1:"+remote)
			if _, errOut, err := openSSH(ctx, t, local, nil, "scp", args...); err != nil {
				t.Fatalf("scp in: %v\n%s", err, errOut)
			}
			got, err := os.ReadFile(filepath.Join(ts.workspace, remote))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("uploaded file differs (%v)", err)
			}
			back := "out-" + mode.flag[1:] + ".bin"
			args = append(sshOpts(port), mode.flag, "dev@127.0.0.1:"+remote, back)
			if _, errOut, err := openSSH(ctx, t, local, nil, "scp", args...); err != nil {
				t.Fatalf("scp out: %v\n%s", err, errOut)
			}
			got, err = os.ReadFile(filepath.Join(local, back))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("downloaded file differs (%v)", err)
			}
		})
	}

	t.Run("sftp", func(t *testing.T) {
		batch := filepath.Join(local, "batch")
		os.WriteFile(batch, []byte("pwd\nput big.bin via-sftp.bin\nls -l via-sftp.bin\n"), 0o644)
		args := append(sshOpts(port), "-b", batch, "dev@127.0.0.1")
		out, errOut, err := openSSH(ctx, t, local, nil, "sftp", args...)
		if err != nil {
			t.Fatalf("sftp: %v\n%s%s", err, out, errOut)
		}
		if !strings.Contains(out, "Remote working directory: "+ts.workspace) {
			t.Errorf("sftp pwd: %s", out)
		}
		if fi, err := os.Stat(filepath.Join(ts.workspace, "via-sftp.bin")); err != nil || fi.Size() != int64(len(big)) {
			t.Errorf("sftp put: %v", err)
		}
	})

	t.Run("agent forwarding", func(t *testing.T) {
		sock := startTestAgent(t)
		args := append(sshOpts(port), "-A", "dev@127.0.0.1", `echo "sock=$SSH_AUTH_SOCK"; ssh-add -l`)
		out, errOut, err := openSSH(ctx, t, local, []string{"SSH_AUTH_SOCK=" + sock}, "ssh", args...)
		if err != nil {
			t.Fatalf("ssh -A: %v\n%s%s", err, out, errOut)
		}
		if !strings.Contains(out, "sock=/") || !strings.Contains(out, "dev8-test-key") {
			t.Errorf("agent not forwarded: %q", out)
		}
		// Without -A there is no socket.
		args = append(sshOpts(port), "dev@127.0.0.1", `echo "sock=${SSH_AUTH_SOCK-none}"`)
		out, _, err = openSSH(ctx, t, local, []string{"SSH_AUTH_SOCK=" + sock}, "ssh", args...)
		if err != nil || strings.TrimSpace(out) != "sock=none" {
			t.Errorf("without -A: %q %v", out, err)
		}
	})

	t.Run("git", func(t *testing.T) {
		if _, err := exec.LookPath("git"); err != nil {
			t.Skip("git not installed")
		}
		bare := filepath.Join(ts.workspace, "repo.git")
		if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		sshCmd := "ssh " + strings.Join(sshOpts(port), " ")
		env := []string{"GIT_SSH_COMMAND=" + sshCmd, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x"}
		work := filepath.Join(local, "work")
		url := "ssh://dev@127.0.0.1" + bare
		steps := [][]string{
			{"git", "init", "-q", "-b", "main", work},
			{"git", "-C", work, "commit", "-q", "--allow-empty", "-m", "first"},
			{"git", "-C", work, "push", "-q", url, "main"},
			{"git", "clone", "-q", "-b", "main", url, filepath.Join(local, "clone")},
		}
		for _, step := range steps {
			if out, errOut, err := openSSH(ctx, t, local, env, step[0], step[1:]...); err != nil {
				t.Fatalf("%v: %v\n%s%s", step, err, out, errOut)
			}
		}
		out, _, err := openSSH(ctx, t, local, env, "git", "-C", filepath.Join(local, "clone"), "log", "--format=%s")
		if err != nil || strings.TrimSpace(out) != "first" {
			t.Errorf("cloned log %q %v", out, err)
		}
	})
}

// startTestAgent serves an SSH agent holding one key on a Unix socket.
func startTestAgent(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "dev8-test-key"}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	return sock
}

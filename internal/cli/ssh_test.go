package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// These tests reach workspaces through the server's websocket endpoints
// (/ssh, /port-forward) and the supervisor's tunnel and SSH server.

func (h *harness) workspaceDir(id string) string {
	h.t.Helper()
	env, err := h.srv.Store.GetEnvironment(h.ctx, id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	inst, err := h.srv.Runtimes[env.Runtime].Inspect(h.ctx, id)
	if err != nil {
		h.t.Fatalf("inspect %s: %v", id, err)
	}
	return inst.WorkspaceDir
}

func exitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

func TestSSH(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	env := h.createRunning("box")
	wsDir := h.workspaceDir(env.ID)

	out, errOut, err := h.run("", "ssh", "box", "--", "pwd")
	if err != nil || out != wsDir+"\n" {
		t.Fatalf("dev8 ssh box -- pwd = %q %q, %v; want %q", out, errOut, err, wsDir)
	}
	// By id, without "--".
	if out, _, err = h.run("", "ssh", env.ID, "echo", "by", "id"); err != nil || out != "by id\n" {
		t.Fatalf("dev8 ssh <id> echo = %q, %v", out, err)
	}

	// The remote exit status is dev8's, stderr is kept apart.
	out, errOut, err = h.run("", "ssh", "box", "echo out; echo oops >&2; exit 3")
	if exitCode(err) != 3 || out != "out\n" || errOut != "oops\n" {
		t.Fatalf("exit 3: out %q err %q, %v", out, errOut, err)
	}
	// Killed by a signal: 128+n, as OpenSSH does.
	if _, _, err = h.run("", "ssh", "box", "kill -TERM $$"); exitCode(err) != 128+15 {
		t.Fatalf("killed by SIGTERM: %v, want exit status 143", err)
	}

	// Standard input reaches the command, and its end is EOF there.
	if out, _, err = h.run("line one\nline two\n", "ssh", "box", "--", "cat"); err != nil || out != "line one\nline two\n" {
		t.Fatalf("cat = %q, %v", out, err)
	}
	// No command and no terminal: the shell reads commands from stdin.
	out, _, err = h.run("echo $((6*7))\nexit 5\n", "ssh", "box")
	if exitCode(err) != 5 || out != "42\n" {
		t.Fatalf("shell from stdin = %q, %v", out, err)
	}
	// -t: a terminal even for a command, with TERM from the environment.
	h.env["TERM"] = "xterm-dev8test"
	out, _, err = h.run("", "ssh", "-t", "box", "tty; echo $TERM")
	delete(h.env, "TERM")
	if err != nil || !regexp.MustCompile(`^/dev/pts/\d+\r?\nxterm-dev8test\r?\n$`).MatchString(out) {
		t.Fatalf("ssh -t = %q, %v", out, err)
	}
	if _, _, err = h.run("", "ssh", "box", "tty"); exitCode(err) != 1 {
		t.Fatalf("tty without -t: %v, want exit status 1 (not a tty)", err)
	}

	// -A: the local agent is reachable from the workspace.
	sock := startAgent(t)
	h.env["SSH_AUTH_SOCK"] = sock
	out, errOut, err = h.run("", "ssh", "-A", "box", `test -S "$SSH_AUTH_SOCK" && echo agent`)
	delete(h.env, "SSH_AUTH_SOCK")
	if err != nil || out != "agent\n" {
		t.Fatalf("ssh -A = %q %q, %v", out, errOut, err)
	}
	if _, err := exec.LookPath("ssh-add"); err == nil {
		h.env["SSH_AUTH_SOCK"] = sock
		out, _, err = h.run("", "ssh", "-A", "box", "ssh-add -l")
		delete(h.env, "SSH_AUTH_SOCK")
		if err != nil || !strings.Contains(out, "dev8-test-key") {
			t.Fatalf("ssh-add -l in the workspace = %q, %v", out, err)
		}
	}

	// A stopped environment: a clear error, no connection attempt.
	if _, _, err := h.run("", "stop", "box"); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.run("", "ssh", "box", "true")
	if err == nil || err.Error() != `environment "box" is STOPPED: start it with: dev8 start box` {
		t.Fatalf("ssh to a stopped environment: %v", err)
	}
}

// startAgent serves an SSH agent holding one key on a Unix socket.
func startAgent(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "dev8-test-key"}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "agent") // short: socket paths are limited
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

func TestSSHStdio(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	env := h.createRunning("box")

	// The test is the SSH client on the other end of dev8's stdin/stdout.
	stdio := func() (*ssh.Client, <-chan error) {
		local, remote := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- h.runIO(h.ctx, local, local, &syncBuffer{}, nil, "ssh", "--stdio", "box")
			local.Close()
		}()
		conn, chans, reqs, err := ssh.NewClientConn(remote, "dev8.box", &ssh.ClientConfig{
			User:            "anyone",
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		})
		if err != nil {
			remote.Close()
			t.Fatalf("SSH over dev8 ssh --stdio: %v (dev8: %v)", err, <-done)
		}
		return ssh.NewClient(conn, chans, reqs), done
	}

	client, done := stdio()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("pwd")
	if err != nil || string(out) != h.workspaceDir(env.ID)+"\n" {
		t.Fatalf("pwd over --stdio = %q, %v", out, err)
	}
	// The client closes: dev8 ssh --stdio ends.
	client.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev8 ssh --stdio after the client closed: %v", err)
		}
	case <-h.ctx.Done():
		t.Fatal("dev8 ssh --stdio did not end when its client closed")
	}

	// The workspace goes away: dev8 ssh --stdio ends too, with the client
	// still connected.
	client, done = stdio()
	defer client.Close()
	if _, _, err := h.run("", "stop", "box"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-h.ctx.Done():
		t.Fatal("dev8 ssh --stdio did not end when the workspace stopped")
	}
}

func TestPortForward(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	h.createRunning("box")

	// A service on the workspace's loopback (the local runtime's workspace
	// shares this machine's): it answers every line in upper case.
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, strings.ToUpper(sc.Text())+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	svcPort := svc.Addr().(*net.TCPAddr).Port
	// A port nothing listens on.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	pr, pw := io.Pipe()
	errOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- h.runIO(ctx, strings.NewReader(""), pw, errOut, nil, "port-forward", "box",
			"--tcp", "0:"+strconv.Itoa(svcPort), "--tcp", "0:"+strconv.Itoa(closedPort))
		pw.Close()
	}()
	// The command prints where it listens.
	sc := bufio.NewScanner(pr)
	local := map[int]string{}
	re := regexp.MustCompile(`^Forwarding (127\.0\.0\.1:\d+) -> box:(\d+)$`)
	for len(local) < 2 && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			p, _ := strconv.Atoi(m[2])
			local[p] = m[1]
		}
	}
	if len(local) < 2 {
		t.Fatalf("port-forward did not say where it listens (%v): %s", sc.Err(), errOut)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	// Two connections at once, each its own stream.
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", local[svcPort])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		msg := "hello from " + strconv.Itoa(i)
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != strings.ToUpper(msg)+"\n" {
			t.Fatalf("through the forward: %q, %v", line, err)
		}
	}

	// Nothing listening there: the local connection is closed, and dev8
	// says why.
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", local[closedPort])
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read from a forward to a closed port: %d, %v", n, err)
	}
	c.Close()
	if !strings.Contains(errOut.String(), "port "+strconv.Itoa(closedPort)) {
		t.Fatalf("no word about the refused connection: %q", errOut)
	}

	// Ctrl-C (here: the context) ends it cleanly.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("port-forward: %v", err)
	}
}

// TestOpenSSH uses the real OpenSSH client with the config config-ssh
// writes: ssh runs this test binary as "dev8 ssh --stdio" (ProxyCommand).
func TestOpenSSH(t *testing.T) {
	t.Parallel()
	sshPath := needOpenSSH(t)
	h := newHarness(t, nil)
	h.login("ada@example.com")
	env := h.createRunning("box")
	wsDir := h.workspaceDir(env.ID)

	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if _, _, err := h.run("", "config-ssh", "--ssh-config", cfg); err != nil {
		t.Fatal(err)
	}
	childEnv := h.cliEnv()
	run := func(stdin string, name string, args ...string) (string, error) {
		cmd := exec.CommandContext(h.ctx, name, args...)
		cmd.Env = childEnv
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = errors.Join(err, errors.New(stderr.String()))
		}
		return string(out), err
	}

	// First connection: no host-key prompt, no key, BatchMode (no prompt
	// at all) is fine.
	out, err := run("", sshPath, "-F", cfg, "-o", "BatchMode=yes", "dev8.box", "pwd")
	if err != nil || out != wsDir+"\n" {
		t.Fatalf("ssh dev8.box pwd = %q, %v; want %q", out, err, wsDir)
	}
	_, err = run("", sshPath, "-F", cfg, "-o", "BatchMode=yes", "dev8.box", "exit 7")
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Fatalf("ssh dev8.box 'exit 7': %v", err)
	}
	// scp (the SFTP protocol) of 50 MB of random bytes, both ways.
	payload := make([]byte, 50<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "up.bin")
	if err := os.WriteFile(src, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	scp := mustLookPath(t, "scp")
	if out, err := run("", scp, "-F", cfg, "-o", "BatchMode=yes", src, "dev8.box:up.bin"); err != nil {
		t.Fatalf("scp up: %q, %v", out, err)
	}
	if data, err := os.ReadFile(filepath.Join(wsDir, "up.bin")); err != nil || !bytes.Equal(data, payload) {
		t.Fatalf("file scp'd to the workspace differs (%d bytes, %v)", len(data), err)
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	if out, err := run("", scp, "-F", cfg, "-o", "BatchMode=yes", "dev8.box:up.bin", back); err != nil {
		t.Fatalf("scp down: %q, %v", out, err)
	}
	if data, _ := os.ReadFile(back); !bytes.Equal(data, payload) {
		t.Fatalf("file scp'd back differs (%d bytes)", len(data))
	}

	// ssh -L to a server listening inside the workspace (for the local
	// runtime, on this machine's loopback).
	inside, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	go func() {
		for {
			c, err := inside.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from inside\n"))
			c.Close()
		}
	}()
	localLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	localPort := localLn.Addr().(*net.TCPAddr).Port
	localLn.Close()
	fwd := exec.CommandContext(h.ctx, sshPath, "-F", cfg, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", localPort, inside.Addr()), "dev8.box")
	fwd.Env = childEnv
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fwd.Process.Kill(); _ = fwd.Wait() }()
	var got []byte
	// ssh binds the local port once the connection is up.
	wait.Succeeds(h.ctx, t, "ssh -L to listen", func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", localPort))
		if err != nil {
			return err
		}
		got, _ = io.ReadAll(c)
		c.Close()
		return nil
	})
	if string(got) != "hello from inside\n" {
		t.Fatalf("through ssh -L: %q", got)
	}

	// git over SSH: clone a repository that lives in the workspace, push
	// a commit back.
	git := mustLookPath(t, "git")
	gitEnv := append(childEnv, "GIT_SSH_COMMAND="+sshPath+" -F "+cfg+" -o BatchMode=yes",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	gitRun := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(h.ctx, git, args...)
		cmd.Dir, cmd.Env = dir, gitEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitRun(wsDir, "init", "-q", "--bare", "repo.git")
	clone := filepath.Join(t.TempDir(), "clone")
	gitRun("", "clone", "-q", "dev8.box:"+filepath.Join(wsDir, "repo.git"), clone)
	if err := os.WriteFile(filepath.Join(clone, "README"), []byte("hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gitRun(clone, "add", "README")
	gitRun(clone, "commit", "-q", "-m", "first")
	gitRun(clone, "push", "-q", "origin", "HEAD")
	gitRun(filepath.Join(wsDir, "repo.git"), "log", "--oneline", "-1")
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (apt-get install openssh-client git)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// TestDialErrors checks what the SDK's tunnels answer when they cannot
// connect: not found, and not running.
func TestDialErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.login("ada@example.com")
	if _, err := c.DialSSH(h.ctx, "env_doesnotexist"); !sdk.IsCode(err, sdk.CodeNotFound) {
		t.Fatalf("DialSSH to no environment: %v", err)
	}
	env, err := c.CreateEnvironment(h.ctx, sdk.CreateEnvironmentRequest{Name: "box"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForStatus(h.ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForStatus(h.ctx, env.ID, sdk.StatusStopped, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.DialPort(h.ctx, env.ID, 80)
	var apiErr *sdk.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != sdk.CodeInvalidState || !strings.Contains(apiErr.Message, "not running") {
		t.Fatalf("DialPort to a stopped environment: %#v", err)
	}
}

// cliEnv is the environment for running this test binary as dev8.
func (h *harness) cliEnv(extra ...string) []string {
	env := []string{"DEV8_TEST_CLI=1", envConfigDir + "=" + h.configDir, "GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEV8_") && !strings.HasPrefix(kv, "GORACE=") && !strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestSSHInteractive runs dev8 ssh as a real process on a terminal: a
// shell with a PTY of the terminal's size and TERM, resized on SIGWINCH,
// and dev8's exit status is the shell's.
func TestSSHInteractive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	h.createRunning("box")

	cmd := exec.CommandContext(h.ctx, os.Args[0], "ssh", "box")
	cmd.Env = h.cliEnv("TERM=xterm-dev8test")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 111})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	stop := context.AfterFunc(h.ctx, func() { tty.Close() })
	defer stop()
	var seen strings.Builder
	// readUntil reads the terminal until want appears after what was read
	// before, and returns the new output.
	readUntil := func(want string) string {
		t.Helper()
		from := seen.Len()
		b := make([]byte, 4096)
		for !strings.Contains(seen.String()[from:], want) {
			n, err := tty.Read(b)
			seen.Write(b[:n])
			if err != nil {
				t.Fatalf("terminal output %q, want %q: %v", seen.String(), want, err)
			}
		}
		return seen.String()[from:]
	}
	io.WriteString(tty, "stty size; echo $TERM; echo A$((1+1))B\r")
	if out := readUntil("A2B\r\n"); !strings.Contains(out, "33 111\r\n") || !strings.Contains(out, "xterm-dev8test\r\n") {
		t.Fatalf("size and TERM in the workspace: %q", out)
	}

	// Resize the terminal (the kernel sends SIGWINCH). dev8 passes the new
	// size on asynchronously, so ask until the shell sees it.
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 44, Cols: 122}); err != nil {
		t.Fatal(err)
	}
	i := 0
	wait.Succeeds(h.ctx, t, "the workspace to see the new size", func() error {
		marker := "R" + strconv.Itoa(i) + "Z"
		io.WriteString(tty, "stty size; echo "+marker+"\r")
		i++
		if out := readUntil(marker + "\r\n"); strings.Contains(out, "44 122\r\n") {
			return nil
		}
		return fmt.Errorf("seen:\n%s", seen.String())
	})

	io.WriteString(tty, "exit 9\r")
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 9 {
		t.Fatalf("dev8 ssh after exit 9: %v\n%s", err, seen.String())
	}
}

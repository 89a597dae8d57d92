package streams

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"

	"dev8.dev/dev8/internal/tunnel"
)

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

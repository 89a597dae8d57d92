package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"

	"dev8.dev/dev8/sdk"
)

func newSSHCommand() *cobra.Command {
	var (
		flags    clientFlags
		opts     sshOptions
		stdio    bool
		forceTTY bool
		noTTY    bool
	)
	cmd := &cobra.Command{
		Use:                   "ssh [flags] <name> [--] [command...]",
		DisableFlagsInUseLine: true,
		Short:                 "Open a shell in an environment, or run a command there",
		Long: `dev8 ssh connects to an environment's workspace over SSH, tunnelled through
the Dev8 server (which checks your token), so no key and no open port is
needed. Without a command it opens an interactive shell; with one it runs it
and exits with its exit status (128+N when it was killed by signal N).

A terminal is allocated for the interactive shell when standard input is a
terminal, and for a command only with -t. Flags go before the name;
everything after the name is the remote command. As with ssh(1), its
arguments are joined with spaces and the workspace's shell runs the result,
so dev8 ssh NAME CMD and ssh dev8.NAME CMD (after dev8 config-ssh) run the
same thing: quote a command with ;, | or && as one argument.

--stdio connects standard input and output to the workspace's SSH server
instead, for OpenSSH's ProxyCommand (dev8 config-ssh writes that for you).`,
		Example: `  dev8 ssh my-env
  dev8 ssh my-env -- ls -la
  dev8 ssh my-env -- 'cd app && npm test'
  dev8 ssh -t my-env htop
  dev8 ssh -A my-env git pull
  ssh -o ProxyCommand='dev8 ssh --stdio my-env' dev8.my-env`,
		Args: cobra.MinimumNArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name, command := args[0], args[1:]
			if len(command) > 0 && command[0] == "--" {
				command = command[1:]
			}
			if stdio && (len(command) > 0 || forceTTY || opts.forwardAgent) {
				return errors.New("--stdio takes no command, -t or -A: the SSH client on the other end of standard input decides")
			}
			if forceTTY && noTTY {
				return errors.New("-t and -T contradict each other")
			}
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			env, err := runningEnvironment(ctx, cmd, c, name)
			if err != nil {
				return err
			}
			conn, err := c.DialSSH(ctx, env.ID)
			if err != nil {
				return fmt.Errorf("connect to %q: %w", env.Name, err)
			}
			if stdio {
				return proxyStdio(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), conn)
			}
			opts.command = strings.Join(command, " ")
			opts.pty = forceTTY
			if len(command) == 0 && !noTTY {
				_, opts.pty = terminalFd(cmd.InOrStdin())
			}
			code, err := runSSHSession(ctx, cmd, conn, env, opts)
			if err != nil {
				return err
			}
			return exitWith(code)
		}),
	}
	flags.register(cmd)
	f := cmd.Flags()
	// Like ssh(1): everything after the environment's name is the command.
	f.SetInterspersed(false)
	f.BoolVar(&stdio, "stdio", false, "connect standard input and output to the workspace's SSH server (for ProxyCommand)")
	f.BoolVarP(&forceTTY, "tty", "t", false, "allocate a terminal even for a command")
	f.BoolVarP(&noTTY, "no-tty", "T", false, "never allocate a terminal")
	f.BoolVarP(&opts.forwardAgent, "forward-agent", "A", false, "forward the local SSH agent (SSH_AUTH_SOCK)")
	return cmd
}

// runningEnvironment finds the environment and makes sure it runs: one
// that is being created or started is waited for; anything else is an
// error saying what to do.
func runningEnvironment(ctx context.Context, cmd *cobra.Command, c *sdk.Client, nameOrID string) (*sdk.Environment, error) {
	env, err := c.FindEnvironment(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	switch env.Status {
	case sdk.StatusRunning:
		return env, nil
	case sdk.StatusCreating, sdk.StatusStarting:
		fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for %q to start...\n", env.Name)
		return c.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil)
	case sdk.StatusStopped, sdk.StatusStopping:
		return nil, fmt.Errorf("environment %q is %s: start it with: dev8 start %s", env.Name, env.Status, env.Name)
	case sdk.StatusError:
		reason := env.StatusReason
		if reason == "" {
			reason = "no reason given"
		}
		return nil, fmt.Errorf("environment %q is in ERROR (%s): try dev8 start %s", env.Name, reason, env.Name)
	}
	return nil, fmt.Errorf("environment %q is %s", env.Name, env.Status)
}

// stdioBuffer is how much proxyStdio moves per read. Each read becomes one
// write on the other side: from standard input, one websocket message,
// framed, masked and flushed on its own. io.Copy's 32 KiB split a full pipe
// (64 KiB on Linux) in two, and a message from the server (up to the
// relay's 256 KiB, tunnel.Join) in eight. A read returns what is there,
// never waiting to fill the buffer, so keystrokes still go out one by one.
const stdioBuffer = 256 << 10

// proxyStdio copies in to conn and conn to out until either side ends,
// then closes conn. A reader blocked on in is left behind: a real process
// exits right after.
func proxyStdio(ctx context.Context, in io.Reader, out io.Writer, conn net.Conn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	done := make(chan error, 2)
	// The struct wrappers hide *os.File's WriterTo and ReaderFrom, with
	// which io.CopyBuffer would ignore the buffer and copy 32 KiB at a time.
	go func() {
		_, err := io.CopyBuffer(struct{ io.Writer }{conn}, struct{ io.Reader }{in}, make([]byte, stdioBuffer))
		done <- err
	}()
	go func() {
		_, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{conn}, make([]byte, stdioBuffer))
		done <- err
	}()
	err := <-done
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		websocket.CloseStatus(err) == websocket.StatusNormalClosure || ctx.Err() != nil {
		return nil
	}
	return err
}

type sshOptions struct {
	command      string // empty: the login shell
	pty          bool
	forwardAgent bool
}

// runSSHSession runs one session over conn and returns the remote exit
// status. Everything it set up (raw terminal mode included) is undone when
// it returns.
func runSSHSession(ctx context.Context, cmd *cobra.Command, conn net.Conn, env *sdk.Environment, opts sshOptions) (int, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	config := &ssh.ClientConfig{
		User: localUser(ctx),
		// No keys: x/crypto/ssh tries the "none" method first, which the
		// workspace's SSH server accepts because the Dev8 server already
		// authenticated this connection by the user's token.
		//
		// Accepting any host key is safe here because the host is not
		// reached over the network: conn is a tunnel to this environment
		// that the Dev8 server opened for this token, over the same
		// (HTTPS) connection that authenticates the server. There is no
		// host key to pin: workspaces are recreated and their keys with
		// them.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		ClientVersion:   "SSH-2.0-dev8",
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, "dev8."+env.Name, config)
	if err != nil {
		return 0, fmt.Errorf("ssh to %q: %w", env.Name, err)
	}
	client := ssh.NewClient(sconn, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return 0, fmt.Errorf("ssh to %q: open session: %w", env.Name, err)
	}
	defer sess.Close()

	stderr := cmd.ErrOrStderr()
	if opts.forwardAgent {
		if sock := getenv(ctx, "SSH_AUTH_SOCK"); sock == "" {
			fmt.Fprintln(stderr, "dev8: -A: SSH_AUTH_SOCK is not set; no agent to forward")
		} else if err := agent.ForwardToRemote(client, sock); err != nil {
			fmt.Fprintln(stderr, "dev8: -A:", err)
		} else if err := agent.RequestAgentForwarding(sess); err != nil {
			fmt.Fprintln(stderr, "dev8: -A: the workspace refused agent forwarding:", err)
		}
	}

	stdin, stdout := cmd.InOrStdin(), cmd.OutOrStdout()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if opts.pty {
		width, height := 80, 24
		outFd, outTTY := terminalFd(stdout)
		if outTTY {
			if w, h, err := term.GetSize(outFd); err == nil {
				width, height = w, h
			}
		}
		termName := firstNonEmpty(getenv(ctx, "TERM"), "xterm-256color")
		modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 14400, ssh.TTY_OP_OSPEED: 14400}
		if err := sess.RequestPty(termName, height, width, modes); err != nil {
			return 0, fmt.Errorf("ssh to %q: request a terminal: %w", env.Name, err)
		}
		if inFd, inTTY := terminalFd(stdin); inTTY {
			state, err := term.MakeRaw(inFd)
			if err != nil {
				return 0, fmt.Errorf("set the terminal to raw mode: %w", err)
			}
			defer term.Restore(inFd, state)
		}
		if outTTY {
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case <-done:
						return
					case <-winch:
						if w, h, err := term.GetSize(outFd); err == nil {
							_ = sess.WindowChange(h, w)
						}
					}
				}
			}()
		}
	}
	if opts.command != "" {
		err = sess.Start(opts.command)
	} else {
		err = sess.Shell()
	}
	if err != nil {
		return 0, fmt.Errorf("ssh to %q: %w", env.Name, err)
	}
	err = sess.Wait()
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		// x/crypto/ssh already maps exit-signal to 128+n, as OpenSSH does.
		return exitErr.ExitStatus(), nil
	case isMissingExit(err):
		return 0, fmt.Errorf("ssh to %q: the connection closed before the remote command reported its exit status", env.Name)
	}
	return 0, fmt.Errorf("ssh to %q: %w", env.Name, err)
}

func isMissingExit(err error) bool {
	var missing *ssh.ExitMissingError
	return errors.As(err, &missing)
}

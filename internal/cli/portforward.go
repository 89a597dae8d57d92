package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

// forwardSpec is one --tcp LOCAL:REMOTE.
type forwardSpec struct {
	local, remote int
}

func parseForwardSpec(s string) (forwardSpec, error) {
	localStr, remoteStr, ok := strings.Cut(s, ":")
	if !ok {
		localStr, remoteStr = s, s
	}
	local, err1 := strconv.Atoi(localStr)
	remote, err2 := strconv.Atoi(remoteStr)
	if err1 != nil || err2 != nil || local < 0 || local > 65535 || remote < 1 || remote > 65535 {
		return forwardSpec{}, fmt.Errorf("--tcp %q: want LOCAL:REMOTE ports (LOCAL 0 picks a free port) or one PORT for both", s)
	}
	return forwardSpec{local: local, remote: remote}, nil
}

func newPortForwardCommand() *cobra.Command {
	var (
		flags   clientFlags
		tcp     []string
		address string
	)
	cmd := &cobra.Command{
		Use:   "port-forward <name> --tcp LOCAL:REMOTE...",
		Short: "Forward local ports to ports in an environment",
		Long: `dev8 port-forward listens on local ports and carries every connection to a
port on the workspace's loopback, tunnelled through the Dev8 server, until
interrupted (Ctrl-C). A connection ends as a whole when either side closes.`,
		Example: `  dev8 port-forward my-env --tcp 8080:3000
  dev8 port-forward my-env --tcp 5432 --tcp 6379
  dev8 port-forward my-env --tcp 0:8080    # any free local port`,
		Args: cobra.ExactArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			if len(tcp) == 0 {
				return fmt.Errorf("nothing to forward: give --tcp LOCAL:REMOTE")
			}
			specs := make([]forwardSpec, len(tcp))
			for i, s := range tcp {
				var err error
				if specs[i], err = parseForwardSpec(s); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			env, err := runningEnvironment(ctx, cmd, c, args[0])
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var lns []net.Listener
			defer func() {
				for _, ln := range lns {
					ln.Close()
				}
			}()
			for _, s := range specs {
				ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(s.local)))
				if err != nil {
					return fmt.Errorf("listen on %s port %d: %w", address, s.local, err)
				}
				lns = append(lns, ln)
				fmt.Fprintf(out, "Forwarding %s -> %s:%d\n", ln.Addr(), env.Name, s.remote)
			}
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			var wg sync.WaitGroup
			for i, ln := range lns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					servePortForward(ctx, c, env.ID, ln, specs[i].remote, errOut)
				}()
			}
			<-ctx.Done()
			for _, ln := range lns {
				ln.Close()
			}
			wg.Wait()
			return nil
		}),
	}
	flags.register(cmd)
	cmd.Flags().StringArrayVar(&tcp, "tcp", nil, "LOCAL:REMOTE port pair to forward (repeatable)")
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "local address to listen on")
	return cmd
}

// servePortForward accepts on ln until it is closed, forwarding each
// connection to port in the environment. It returns once every connection
// it started has ended; ending ctx ends them.
func servePortForward(ctx context.Context, c *sdk.Client, id string, ln net.Listener, port int, errOut io.Writer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex // errOut is shared by the connections
	for {
		local, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer local.Close()
			remote, err := c.DialPort(ctx, id, port)
			if err != nil {
				mu.Lock()
				fmt.Fprintf(errOut, "dev8: forward %s to port %d: %v\n", local.RemoteAddr(), port, err)
				mu.Unlock()
				return
			}
			pipe(ctx, local, remote)
		}()
	}
}

// pipe copies both ways between a and b until either direction ends or ctx
// does, then closes both.
func pipe(ctx context.Context, a, b net.Conn) {
	closeBoth := func() {
		a.Close()
		b.Close()
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	closeBoth()
	<-done
}

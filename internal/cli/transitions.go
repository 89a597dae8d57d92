package cli

// What start, stop and rm (and create's wait) share: send the request, then,
// unless --no-wait, follow the environment to where it leads, printing each
// status it passes.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

// defaultWaitTimeout bounds how long create, start, stop and rm wait for
// the end state.
const defaultWaitTimeout = 10 * time.Minute

// waitFlags are --no-wait and --timeout.
type waitFlags struct {
	noWait  bool
	timeout time.Duration
}

func (f *waitFlags) register(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "return once the server has the request instead of waiting until "+what)
	cmd.Flags().DurationVar(&f.timeout, "timeout", defaultWaitTimeout, "how long to wait until "+what+" (0: no limit)")
}

func (f *waitFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.timeout > 0 {
		return context.WithTimeout(ctx, f.timeout)
	}
	return context.WithCancel(ctx)
}

// waitError explains a wait that did not end where it should.
func waitError(err error, name string, want string, p *progress, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("environment %q is still %s after %s (wanted %s); see: dev8 ls", name, p.last, timeout, want)
	}
	var envErr *sdk.EnvironmentError
	if errors.As(err, &envErr) {
		return err
	}
	if sdk.IsNotFound(err) {
		return fmt.Errorf("environment %q was deleted", name)
	}
	return err
}

// follow prints env's status from from on until it reaches to (or, when to
// is "", until env is gone), and returns it as it is then.
func follow(ctx context.Context, out io.Writer, c *sdk.Client, env *sdk.Environment, from, to sdk.Status, wait *waitFlags) (*sdk.Environment, error) {
	p := newProgress(out)
	p.onChange(sdk.Environment{Status: from})
	wctx, cancel := wait.context(ctx)
	defer cancel()
	if to == "" {
		if err := c.WaitForDeleted(wctx, env.ID, p.onChange); err != nil {
			return nil, waitError(err, env.Name, "deleted", p, wait.timeout)
		}
		return nil, nil
	}
	reached, err := c.WaitForStatus(wctx, env.ID, to, p.onChange)
	if err != nil {
		return nil, waitError(err, env.Name, string(to), p, wait.timeout)
	}
	return reached, nil
}

// transition is one request that moves an environment: start, stop or
// delete.
type transition struct {
	verb  string // the request, in errors: start "my-env": …
	doing string // what progress is headed with: Starting "my-env" (env_…)...
	send  func(*sdk.Client, context.Context, string) (*sdk.ActionResult, error)
	to    sdk.Status // where it leads; "" is gone
}

var (
	startTransition  = transition{verb: "start", doing: "Starting", send: (*sdk.Client).Start, to: sdk.StatusRunning}
	stopTransition   = transition{verb: "stop", doing: "Stopping", send: (*sdk.Client).Stop, to: sdk.StatusStopped}
	deleteTransition = transition{verb: "delete", doing: "Deleting", send: (*sdk.Client).Delete}
)

// apply sends t for env and, unless --no-wait, follows env to its end.
func (t transition) apply(ctx context.Context, out io.Writer, c *sdk.Client, env *sdk.Environment, wait *waitFlags) error {
	res, err := t.send(c, ctx, env.ID)
	if err != nil {
		return fmt.Errorf("%s %q: %w", t.verb, env.Name, err)
	}
	if wait.noWait {
		if t.to == "" {
			fmt.Fprintf(out, "Environment %q is being deleted.\n", env.Name)
		} else {
			fmt.Fprintf(out, "Environment %q is %s.\n", env.Name, res.Status)
		}
		return nil
	}
	fmt.Fprintf(out, "%s %q (%s)...\n", t.doing, env.Name, env.ID)
	reached, err := follow(ctx, out, c, env, res.Status, t.to, wait)
	switch {
	case err != nil:
		return err
	case t.to == sdk.StatusRunning:
		connectHelp(out, reached)
	case t.to == "":
		fmt.Fprintf(out, "Environment %q is deleted.\n", env.Name)
	default:
		fmt.Fprintf(out, "Environment %q is %s.\n", env.Name, strings.ToLower(string(t.to)))
	}
	return nil
}

func newStartCommand() *cobra.Command {
	return newTransitionCommand(&cobra.Command{
		Use:   "start <name>...",
		Short: "Start stopped environments and wait until they run",
		Long: `dev8 start starts each environment (by name or id) and waits until it is
RUNNING, printing its status as it changes. Starting an environment that runs
already is fine; starting one in ERROR tries again.`,
		Example: `  dev8 start my-env
  dev8 start my-env other-env --no-wait`,
	}, startTransition, "it runs")
}

func newStopCommand() *cobra.Command {
	return newTransitionCommand(&cobra.Command{
		Use:   "stop <name>...",
		Short: "Stop environments (their files are kept)",
		Long: `dev8 stop stops each environment (by name or id) and waits until it is
STOPPED. The workspace's files are kept; dev8 start brings it back. Stopping
an environment that is stopped already is fine.`,
		Example: `  dev8 stop my-env
  dev8 stop my-env --no-wait`,
	}, stopTransition, "it is stopped")
}

// newTransitionCommand makes cmd apply t to each environment named, in
// order; the first failure stops it.
func newTransitionCommand(cmd *cobra.Command, t transition, waitWhat string) *cobra.Command {
	var (
		flags clientFlags
		wait  waitFlags
	)
	cmd.Args = cobra.MinimumNArgs(1)
	cmd.RunE = forEachNamed(&flags, (*sdk.Client).FindEnvironment, func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, _ string, env *sdk.Environment) error {
		return t.apply(ctx, cmd.OutOrStdout(), c, env, &wait)
	})
	flags.register(cmd)
	wait.register(cmd, waitWhat)
	return cmd
}

func newRemoveCommand() *cobra.Command {
	var (
		flags clientFlags
		wait  waitFlags
		yes   bool
	)
	cmd := &cobra.Command{
		Use:     "rm <name>...",
		Aliases: []string{"delete"},
		Short:   "Delete environments and their files",
		Long: `dev8 rm deletes each environment (by name or id) with its files and waits
until it is gone. On a terminal it asks first unless --yes is given; without
a terminal (scripts) it does not ask.`,
		Example: `  dev8 rm my-env
  dev8 rm old-1 old-2 --yes`,
		Args: cobra.MinimumNArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			// Every name is resolved before the question, which lists them.
			envs := make([]*sdk.Environment, len(args))
			names := make([]string, len(args))
			for i, arg := range args {
				var err error
				if envs[i], err = c.FindEnvironment(ctx, arg); err != nil {
					return err
				}
				names[i] = strconv.Quote(envs[i].Name)
			}
			if _, tty := terminalFd(cmd.InOrStdin()); tty && !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Delete %s and all %s files? This cannot be undone. [y/N] ", strings.Join(names, ", "), plural(len(names), "its", "their"))
				answer, _ := readLine(bufio.NewReader(cmd.InOrStdin()))
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return errors.New("nothing deleted")
				}
			}
			for _, env := range envs {
				if err := deleteTransition.apply(ctx, cmd.OutOrStdout(), c, env, &wait); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it is gone")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// forEachNamed is the RunE of a command that changes each thing named on
// its command line, in order: it resolves the name with find, then applies
// act; the first failure stops it.
func forEachNamed[T any](flags *clientFlags, find func(*sdk.Client, context.Context, string) (T, error), act func(context.Context, *cobra.Command, *sdk.Client, string, T) error) func(*cobra.Command, []string) error {
	return flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
		for _, arg := range args {
			v, err := find(c, ctx, arg)
			if err != nil {
				return err
			}
			if err := act(ctx, cmd, c, arg, v); err != nil {
				return err
			}
		}
		return nil
	})
}

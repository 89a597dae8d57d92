package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

// defaultWaitTimeout bounds how long create, start, stop and rm wait for
// the end state.
const defaultWaitTimeout = 10 * time.Minute

func newListCommand() *cobra.Command {
	var (
		flags    clientFlags
		asJSON   bool
		all      bool
		statuses []string
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your environments",
		Long: `dev8 ls lists your environments with their status, size, hourly price, the
cost so far and when they were last used.`,
		Example: `  dev8 ls
  dev8 ls --status running,stopped
  dev8 ls --json | jq -r '.[].name'`,
		Args: cobra.NoArgs,
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			f := sdk.EnvironmentFilter{All: all}
			for _, s := range statuses {
				for _, part := range strings.Split(s, ",") {
					if part = strings.TrimSpace(part); part != "" {
						f.Statuses = append(f.Statuses, sdk.Status(strings.ToUpper(part)))
					}
				}
			}
			envs, err := c.AllEnvironments(ctx, f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSONList(out, envs)
			}
			if len(envs) == 0 {
				fmt.Fprintln(out, "No environments. Create one with: dev8 create <name>")
				return nil
			}
			return printEnvironments(out, envs, time.Now())
		}),
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the environments as a JSON array (the API's objects)")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (comma-separated: creating, starting, running, stopping, stopped, error, deleting)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "every user's environments (admins only)")
	return cmd
}

func printEnvironments(w io.Writer, envs []sdk.Environment, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tTEMPLATE\tSIZE\tCOST/H\tTOTAL\tLAST ACTIVE")
	for _, e := range envs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.Name, e.Status, e.TemplateName,
			fmt.Sprintf("%d CPU/%d GB/%d GB", e.CPUCores, e.MemoryGB, e.StorageGB),
			formatCost(e.EstimatedCostPerHour), formatCost(e.TotalCost),
			ago(now, e.LastAccessedAt))
	}
	return tw.Flush()
}

func formatCost(c float64) string { return fmt.Sprintf("$%.4f", c) }

// ago says how long before now t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

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

func newCreateCommand() *cobra.Command {
	var (
		flags    clientFlags
		wait     waitFlags
		req      sdk.CreateEnvironmentRequest
		autoStop string
		envVars  []string
		ports    []string
	)
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create an environment and wait until it runs",
		Long: `dev8 create asks the server for a new environment and prints its status as it
changes until it is RUNNING, then how to connect. If it ends in ERROR, dev8
exits non-zero with the reason. Sizes come from, in order: --cpu/--memory/
--storage, the instance type, the template's defaults.

The name is a DNS label: 1-63 lower-case letters, digits and '-'.`,
		Example: `  dev8 create my-env
  dev8 create api --template nodejs --instance-type compute
  dev8 create scratch --cpu 1 --memory 2 --auto-stop 2h --env DEBUG=1 --no-wait`,
		Args: cobra.ExactArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req.Name = args[0]
			if autoStop != "" {
				m, err := parseAutoStop(autoStop)
				if err != nil {
					return err
				}
				req.AutoStopMinutes = &m
			}
			for _, kv := range envVars {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--env %q: want NAME=VALUE", kv)
				}
				if req.EnvironmentVariables == nil {
					req.EnvironmentVariables = map[string]string{}
				}
				req.EnvironmentVariables[k] = v
			}
			for _, p := range ports {
				port, err := parsePort(p)
				if err != nil {
					return err
				}
				req.Ports = append(req.Ports, port)
			}
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			env, err := c.CreateEnvironment(ctx, req)
			if err != nil {
				return fmt.Errorf("create %q: %w", req.Name, err)
			}
			out := cmd.OutOrStdout()
			if wait.noWait {
				fmt.Fprintf(out, "Environment %q (%s) is %s.\n", env.Name, env.ID, env.Status)
				return nil
			}
			fmt.Fprintf(out, "Creating environment %q (%s)...\n", env.Name, env.ID)
			return waitRunning(ctx, cmd, c, env, env.Status, &wait)
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it runs")
	f := cmd.Flags()
	f.StringVar(&req.TemplateName, "template", "", "template (see the templates API; server default: base)")
	f.StringVar(&req.InstanceType, "instance-type", "", "instance type: lightweight, balanced, compute, memory, ...")
	f.IntVar(&req.CPUCores, "cpu", 0, "vCPUs (1-16)")
	f.IntVar(&req.MemoryGB, "memory", 0, "memory in GB (1-64)")
	f.IntVar(&req.StorageGB, "storage", 0, "storage in GB (1-500)")
	f.StringVar(&req.BaseImage, "image", "", "image overriding the template's")
	f.StringVar(&autoStop, "auto-stop", "", "stop after this long idle: minutes or a duration such as 2h; 0 or never disables (server default: 30m)")
	f.StringArrayVarP(&envVars, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringArrayVarP(&ports, "port", "p", nil, "port the workspace serves, PORT or PORT/PROTOCOL (repeatable)")
	return cmd
}

// waitRunning follows env to RUNNING, printing each status, then prints how
// to connect.
func waitRunning(ctx context.Context, cmd *cobra.Command, c *sdk.Client, env *sdk.Environment, from sdk.Status, wait *waitFlags) error {
	out := cmd.OutOrStdout()
	p := newProgress(out)
	p.onChange(sdk.Environment{Status: from})
	wctx, cancel := wait.context(ctx)
	defer cancel()
	running, err := c.WaitForStatus(wctx, env.ID, sdk.StatusRunning, p.onChange)
	if err != nil {
		return waitError(err, env.Name, "RUNNING", p, wait.timeout)
	}
	connectHelp(out, running)
	return nil
}

func parseAutoStop(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "never", "off":
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--auto-stop %q: want minutes (45), a duration (2h) or never", s)
	}
	if d%time.Minute != 0 {
		return 0, fmt.Errorf("--auto-stop %q: whole minutes only", s)
	}
	return int(d / time.Minute), nil
}

func parsePort(s string) (sdk.Port, error) {
	num, proto, _ := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return sdk.Port{}, fmt.Errorf("--port %q: want a port 1-65535, optionally /tcp or /udp", s)
	}
	if proto == "" {
		proto = "tcp"
	}
	return sdk.Port{Port: n, Protocol: strings.ToLower(proto)}, nil
}

func newStartCommand() *cobra.Command {
	var (
		flags clientFlags
		wait  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "start <name>...",
		Short: "Start stopped environments and wait until they run",
		Long: `dev8 start starts each environment (by name or id) and waits until it is
RUNNING, printing its status as it changes. Starting an environment that runs
already is fine; starting one in ERROR tries again.`,
		Example: `  dev8 start my-env
  dev8 start my-env other-env --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, arg := range args {
				env, err := c.FindEnvironment(ctx, arg)
				if err != nil {
					return err
				}
				res, err := c.Start(ctx, env.ID)
				if err != nil {
					return fmt.Errorf("start %q: %w", env.Name, err)
				}
				if wait.noWait {
					fmt.Fprintf(out, "Environment %q is %s.\n", env.Name, res.Status)
					continue
				}
				fmt.Fprintf(out, "Starting %q (%s)...\n", env.Name, env.ID)
				if err := waitRunning(ctx, cmd, c, env, res.Status, &wait); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it runs")
	return cmd
}

func newStopCommand() *cobra.Command {
	var (
		flags clientFlags
		wait  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "stop <name>...",
		Short: "Stop environments (their files are kept)",
		Long: `dev8 stop stops each environment (by name or id) and waits until it is
STOPPED. The workspace's files are kept; dev8 start brings it back. Stopping
an environment that is stopped already is fine.`,
		Example: `  dev8 stop my-env
  dev8 stop my-env --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, arg := range args {
				env, err := c.FindEnvironment(ctx, arg)
				if err != nil {
					return err
				}
				res, err := c.Stop(ctx, env.ID)
				if err != nil {
					return fmt.Errorf("stop %q: %w", env.Name, err)
				}
				if wait.noWait {
					fmt.Fprintf(out, "Environment %q is %s.\n", env.Name, res.Status)
					continue
				}
				fmt.Fprintf(out, "Stopping %q (%s)...\n", env.Name, env.ID)
				p := newProgress(out)
				p.onChange(sdk.Environment{Status: res.Status})
				wctx, cancel := wait.context(ctx)
				_, err = c.WaitForStatus(wctx, env.ID, sdk.StatusStopped, p.onChange)
				cancel()
				if err != nil {
					return waitError(err, env.Name, "STOPPED", p, wait.timeout)
				}
				fmt.Fprintf(out, "Environment %q is stopped.\n", env.Name)
			}
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it is stopped")
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
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, _, err := flags.client(ctx)
			if err != nil {
				return err
			}
			envs := make([]*sdk.Environment, len(args))
			names := make([]string, len(args))
			for i, arg := range args {
				if envs[i], err = c.FindEnvironment(ctx, arg); err != nil {
					return err
				}
				names[i] = strconv.Quote(envs[i].Name)
			}
			out := cmd.OutOrStdout()
			if _, tty := terminalFd(cmd.InOrStdin()); tty && !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Delete %s and all %s files? This cannot be undone. [y/N] ", strings.Join(names, ", "), plural(len(names), "its", "their"))
				answer, _ := readLine(bufio.NewReader(cmd.InOrStdin()))
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return errors.New("nothing deleted")
				}
			}
			for _, env := range envs {
				res, err := c.Delete(ctx, env.ID)
				if err != nil {
					return fmt.Errorf("delete %q: %w", env.Name, err)
				}
				if wait.noWait {
					fmt.Fprintf(out, "Environment %q is being deleted.\n", env.Name)
					continue
				}
				fmt.Fprintf(out, "Deleting %q (%s)...\n", env.Name, env.ID)
				p := newProgress(out)
				p.onChange(sdk.Environment{Status: res.Status})
				wctx, cancel := wait.context(ctx)
				err = c.WaitForDeleted(wctx, env.ID, p.onChange)
				cancel()
				if err != nil {
					return waitError(err, env.Name, "deleted", p, wait.timeout)
				}
				fmt.Fprintf(out, "Environment %q is deleted.\n", env.Name)
			}
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it is gone")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// printJSONList prints items as an indented JSON array; none is [], not
// null, so scripts can iterate without a check.
func printJSONList[T any](w io.Writer, items []T) error {
	if items == nil {
		items = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(items)
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/sdk"
)

func newListCommand() *cobra.Command {
	var (
		flags    clientFlags
		asJSON   jsonFlag
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
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
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
			return printList(cmd.OutOrStdout(), asJSON, envs, "No environments. Create one with: dev8 create <name>", printEnvironments)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "environments")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (comma-separated: creating, starting, running, stopping, stopped, error, deleting)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "every user's environments (admins only)")
	return cmd
}

func printEnvironments(w io.Writer, envs []sdk.Environment, now time.Time) error {
	tw := newTable(w, "NAME", "STATUS", "TEMPLATE", "SIZE", "COST/H", "TOTAL", "LAST ACTIVE")
	for _, e := range envs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.Name, e.Status, e.TemplateName,
			fmt.Sprintf("%s CPU/%d GB/%d GB", catalog.FormatCPU(e.CPUCores), e.MemoryGB, e.StorageGB),
			formatCost(e.EstimatedCostPerHour), formatCost(e.TotalCost),
			ago(now, e.LastAccessedAt))
	}
	return tw.Flush()
}

func newCreateCommand() *cobra.Command {
	var (
		flags              clientFlags
		wait               waitFlags
		req                sdk.CreateEnvironmentRequest
		cpu                float64
		memory, storage    int
		autoStop           string
		envVars            []string
		ports              []string
		fromSnapshot, from string
	)
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create an environment and wait until it runs",
		Long: `dev8 create asks the server for a new environment and prints its status as it
changes until it is RUNNING, then how to connect. If it ends in ERROR, dev8
exits non-zero with the reason. Sizes come from, in order: --cpu/--memory/
--storage, the instance type, the template's defaults.

The name is a DNS label: 1-63 lower-case letters, digits and '-'.

--from-snapshot forks: the new environment's workspace starts as a snapshot
holds it. Give the snapshot's id, or name its environment with --from and
give "latest" (the default: its newest completed snapshot) or the start of
an id. With --from, the template is the source environment's unless
--template or --image says otherwise. The files are restored once the new
environment runs.`,
		Example: `  dev8 create my-env
  dev8 create api --template nodejs --instance-type compute
  dev8 create scratch --cpu 1 --memory 2 --auto-stop 2h --env DEBUG=1 --no-wait
  dev8 create web-copy --from web
  dev8 create web-copy --from web --from-snapshot snap_q2w3
  dev8 create web-copy --from-snapshot snap_q2w3e4r5t6y7u8i9o0pa`,
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
			// A size is sent only when its flag was given: the server
			// refuses an explicit 0 rather than taking the default.
			if cmd.Flags().Changed("cpu") {
				req.CPUCores = &cpu
			}
			for name, size := range map[string]struct {
				v   int
				dst **int
			}{"memory": {memory, &req.MemoryGB}, "storage": {storage, &req.StorageGB}} {
				if cmd.Flags().Changed(name) {
					*size.dst = sdk.Int(size.v)
				}
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
			if fromSnapshot != "" || from != "" {
				if err := forkFrom(ctx, cmd, c, &req, from, fromSnapshot); err != nil {
					return err
				}
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
			running, err := follow(ctx, out, c, env, env.Status, sdk.StatusRunning, &wait)
			if err != nil {
				return err
			}
			// A fork's restore may be under way or over by now (RUNNING
			// was seen late); either way it is waited for and its outcome
			// said.
			if running.RestoringSnapshot != "" || req.FromSnapshot != "" {
				if running, err = awaitRestore(ctx, out, c, *running); err != nil {
					return err
				}
			}
			connectHelp(out, running)
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "it runs")
	f := cmd.Flags()
	f.StringVar(&req.TemplateName, "template", "", "template (see the templates API; server default: base)")
	f.StringVar(&req.InstanceType, "instance-type", "", "instance type: lightweight, balanced, compute, memory, ...")
	f.Float64Var(&cpu, "cpu", 0, "vCPUs, 0.25-16 in steps of 0.25 (0.5, 2)")
	f.IntVar(&memory, "memory", 0, "memory in GB (1-64)")
	f.IntVar(&storage, "storage", 0, "storage in GB (1-500)")
	f.StringVar(&req.BaseImage, "image", "", "image overriding the template's")
	f.StringVar(&req.Runtime, "runtime", "", "runtime to create it on (local, docker, ...: dev8 templates shows where each template can run; server default: the first where it can)")
	f.StringVar(&autoStop, "auto-stop", "", "stop after this long idle: minutes or a duration such as 2h; 0 or never disables (server default: 30m)")
	f.StringArrayVarP(&envVars, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringArrayVarP(&ports, "port", "p", nil, "port the workspace serves, PORT or PORT/PROTOCOL (repeatable)")
	f.StringVar(&fromSnapshot, "from-snapshot", "", "start from this snapshot: an id (snap_…), or with --from latest or the start of an id")
	f.StringVar(&from, "from", "", "the environment (name or id) whose snapshot to start from; alone, its latest")
	return cmd
}

// awaitRestore waits until the files of the snapshot being restored into
// env (a fork's) are all there, and says how that went (the status reason
// the restore's end leaves, lifecycle.Manager.NoteRunning).
func awaitRestore(ctx context.Context, out io.Writer, c *sdk.Client, env sdk.Environment) (*sdk.Environment, error) {
	if env.RestoringSnapshot != "" {
		fmt.Fprintf(out, "Restoring its files from snapshot %s...\n", env.RestoringSnapshot)
	}
	done, err := c.Watch(ctx, env.ID, func(e sdk.Environment) bool {
		return e.RestoringSnapshot == "" || e.Status != sdk.StatusRunning
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the files of %q: %w", env.Name, err)
	}
	if done.StatusReason != "" {
		fmt.Fprintln(out, done.StatusReason)
	}
	return done, nil
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

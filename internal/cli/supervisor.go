package cli

import (
	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/supervisor"
)

// newSupervisorCommand is `dev8 supervisor`, which workspaces run when this
// dev8 embeds no small supervisor (internal/supervisorbin). cmd/dev8-supervisor
// takes the same command line; keep the two in step.
func newSupervisorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Run inside a workspace: tunnel, SSH, terminals, code-server, metrics (started by the runtime)",
		Long: `dev8 supervisor runs inside every workspace. The runtime starts it and
configures it through DEV8_* environment variables; people do not run it by hand.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return supervisor.Main(cmd.Context())
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "install PATH",
		Short: "Copy this executable to PATH (a Kubernetes workspace's init container does)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return supervisor.InstallSelf(args[0])
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "seed-home SRC DST",
		Short: "Copy the image's home SRC into the home's volume DST if that is empty (a Kubernetes workspace's init container does)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return supervisor.SeedHome(args[0], args[1], cmd.ErrOrStderr())
		},
	})
	return cmd
}

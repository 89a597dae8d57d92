package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

func newTemplatesCommand() *cobra.Command {
	var (
		flags  clientFlags
		asJSON jsonFlag
	)
	cmd := &cobra.Command{
		Use:     "templates",
		Aliases: []string{"template"},
		Short:   "List the templates environments can be created from",
		Long: `dev8 templates lists the server's templates, popular ones first: the name
to pass to dev8 create --template, the default size and what it costs an hour
while running.`,
		Example: `  dev8 templates
  dev8 create web --template nodejs
  dev8 templates --json | jq -r '.[].name'`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			tpls, err := c.Templates(ctx)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), asJSON, tpls, "The server has no templates.", printTemplates)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "templates")
	return cmd
}

func printTemplates(w io.Writer, tpls []sdk.Template, _ time.Time) error {
	tw := newTable(w, "NAME", "TEMPLATE", "SIZE", "PER HOUR", "DESCRIPTION")
	for _, t := range tpls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.DisplayName,
			fmt.Sprintf("%d CPU/%d GB/%d GB", t.DefaultCPU, t.DefaultMemory, t.DefaultStorage),
			formatCost(t.EstimatedCostPerHour), t.Description)
	}
	return tw.Flush()
}

package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/catalog"
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
to pass to dev8 create --template, where a create from it runs now (the
runtime, or "unavailable" with what to run below the table), the default
size and what it costs an hour while running.`,
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
	tw := newTable(w, "NAME", "TEMPLATE", "RUNS ON", "SIZE", "PER HOUR", "DESCRIPTION")
	var notes []string
	for _, t := range tpls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.DisplayName, runsOn(t),
			fmt.Sprintf("%s CPU/%d GB/%d GB", catalog.FormatCPU(t.DefaultCPU), t.DefaultMemory, t.DefaultStorage),
			formatCost(t.EstimatedCostPerHour), t.Description)
		for _, r := range t.Runtimes {
			if r.State != sdk.TemplateReady && r.Reason != "" {
				notes = append(notes, fmt.Sprintf("%s on %s: %s", t.Name, r.Runtime, r.Reason))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

// runsOn is where a create from t that names no runtime goes now.
func runsOn(t sdk.Template) string {
	switch {
	case t.State == sdk.TemplateUnavailable:
		return "unavailable"
	case t.State == sdk.TemplatePreparing:
		return t.Runtime + " (preparing)"
	}
	for _, r := range t.Runtimes {
		if r.Runtime == t.Runtime && r.HostTools {
			return t.Runtime + " (host tools)"
		}
	}
	return t.Runtime
}

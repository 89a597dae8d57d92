package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/sdk"
)

func newInstanceTypesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "instance-types",
		Aliases: []string{"instance-type", "sizes"},
		Short:   "List instance types; admins add, edit and retire them",
		Long: `dev8 instance-types lists the sizes dev8 create --instance-type can name:
CPUs, memory, default storage, the price per hour and, for GPU types, the
extended resources and node labels that place the workspace. Admins add
types (create), change them (edit) and retire or restore them (deactivate,
activate). A type with resources or a node selector runs only on the
kubernetes runtime; environments keep what their type was when they were
made, so an edit changes no existing workspace.`,
		Example: `  dev8 instance-types
  dev8 instance-types create gpu --cpu 4 --memory 16 --storage 50 --resource nvidia.com/gpu=1 --node-selector pool=gpu
  dev8 create train --instance-type gpu
  dev8 instance-types edit gpu --resource nvidia.com/gpu=2
  dev8 instance-types deactivate gpu`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newInstanceTypesListCommand(), newInstanceTypesCreateCommand(), newInstanceTypesEditCommand(),
		newInstanceTypesActivateCommand("deactivate", "Retire instance types (admins)", "Retired", false),
		newInstanceTypesActivateCommand("activate", "Offer retired instance types again (admins)", "Offered again", true))
	return cmd
}

func newInstanceTypesListCommand() *cobra.Command {
	var (
		flags  clientFlags
		asJSON jsonFlag
		all    bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List instance types",
		Long: `dev8 instance-types ls lists the instance types new environments may use;
with --all (admins) the retired ones too, with their state.`,
		Example: `  dev8 instance-types ls
  dev8 instance-types ls --all --json`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			list := c.InstanceTypes
			if all {
				list = c.AllInstanceTypes
			}
			its, err := list(ctx)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), asJSON, its, "The server has no instance types.", printInstanceTypes)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "instance types")
	cmd.Flags().BoolVar(&all, "all", false, "also retired instance types (admins)")
	return cmd
}

func printInstanceTypes(w io.Writer, its []sdk.InstanceType, _ time.Time) error {
	tw := newTable(w, "NAME", "TYPE", "SIZE", "PER HOUR", "PLACEMENT", "STATE")
	for _, it := range its {
		var place []string
		if len(it.Resources) > 0 {
			place = append(place, placement.Describe(it.Resources))
		}
		if len(it.NodeSelector) > 0 {
			place = append(place, "nodes "+placement.Describe(it.NodeSelector))
		}
		if len(place) == 0 {
			place = []string{"-"}
		}
		state := "active"
		if !it.IsActive {
			state = "retired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Name, it.DisplayName,
			fmt.Sprintf("%s CPU/%d GB/%d GB", catalog.FormatCPU(it.CPUCores), it.MemoryGB, it.StorageGB),
			formatCost(it.EstimatedCostPerHour), strings.Join(place, "; "), state)
	}
	return tw.Flush()
}

// placementFlags are --resource and --node-selector, repeatable NAME=VALUE.
type placementFlags struct {
	resources, nodeSelector []string
	noResources, noSelector bool
}

func (f *placementFlags) register(cmd *cobra.Command, edit bool) {
	cmd.Flags().StringArrayVar(&f.resources, "resource", nil, "an extended resource the workspace asks for, `NAME=COUNT` (nvidia.com/gpu=1); repeatable"+
		map[bool]string{true: "; replaces the type's resources", false: ""}[edit])
	cmd.Flags().StringArrayVar(&f.nodeSelector, "node-selector", nil, "a node label the workspace runs on, `KEY=VALUE` (pool=gpu); repeatable"+
		map[bool]string{true: "; replaces the type's node selector", false: ""}[edit])
	if edit {
		cmd.Flags().BoolVar(&f.noResources, "no-resources", false, "remove the type's extended resources")
		cmd.Flags().BoolVar(&f.noSelector, "no-node-selector", false, "remove the type's node selector")
	}
}

// maps parses the flags; nil means "not given".
func (f *placementFlags) maps() (res, sel map[string]string, err error) {
	if f.noResources && len(f.resources) > 0 || f.noSelector && len(f.nodeSelector) > 0 {
		return nil, nil, fmt.Errorf("--no-resources and --no-node-selector cannot be given with --resource and --node-selector")
	}
	if res, err = parsePairs("--resource", f.resources); err != nil {
		return nil, nil, err
	}
	if sel, err = parsePairs("--node-selector", f.nodeSelector); err != nil {
		return nil, nil, err
	}
	if f.noResources {
		res = map[string]string{}
	}
	if f.noSelector {
		sel = map[string]string{}
	}
	return res, sel, nil
}

func parsePairs(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE", flag, item)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: %s given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

func newInstanceTypesCreateCommand() *cobra.Command {
	var (
		flags clientFlags
		req   sdk.CreateInstanceTypeRequest
		place placementFlags
	)
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Add an instance type (admins)",
		Long: `dev8 instance-types create adds an active instance type. --cpu, --memory and
--storage are required; --resource and --node-selector make it a GPU (or
other extended-resource) type, which only the kubernetes runtime can run:
the server's --kubernetes-tolerations may be needed to reach tainted GPU
nodes. The server checks everything and says what it refuses.`,
		Example: `  dev8 instance-types create gpu --display-name "GPU" --cpu 4 --memory 16 --storage 50 --resource nvidia.com/gpu=1 --node-selector pool=gpu`,
		Args:    cobra.ExactArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			var err error
			if req.Resources, req.NodeSelector, err = place.maps(); err != nil {
				return err
			}
			req.Name = args[0]
			it, err := c.CreateInstanceType(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created instance type %s.\n", it.Name)
			return printInstanceTypes(cmd.OutOrStdout(), []sdk.InstanceType{*it}, time.Time{})
		}),
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&req.DisplayName, "display-name", "", "the name people see (default: the name)")
	cmd.Flags().StringVar(&req.Description, "description", "", "what the type is for")
	cmd.Flags().Float64Var(&req.CPUCores, "cpu", 0, "vCPUs, 0.25-16 in steps of 0.25 (0.5, 2)")
	cmd.Flags().IntVar(&req.MemoryGB, "memory", 0, "memory in GB (1-64)")
	cmd.Flags().IntVar(&req.StorageGB, "storage", 0, "default storage in GB (1-500)")
	cmd.Flags().IntVar(&req.SortOrder, "sort-order", 0, "where it is listed (then by name)")
	place.register(cmd, false)
	for _, f := range []string{"cpu", "memory", "storage"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newInstanceTypesEditCommand() *cobra.Command {
	var (
		flags                    clientFlags
		place                    placementFlags
		displayName, description string
		cpu                      float64
		memory, storage, sort    int
	)
	cmd := &cobra.Command{
		Use:   "edit <name>",
		Short: "Change an instance type (admins)",
		Long: `dev8 instance-types edit changes what its flags name and keeps the rest.
--resource and --node-selector replace the type's whole list;
--no-resources and --no-node-selector remove it. Environments made from the
type keep the sizes and placement they were made with.`,
		Example: `  dev8 instance-types edit gpu --resource nvidia.com/gpu=2 --memory 32
  dev8 instance-types edit gpu --no-node-selector`,
		Args: cobra.ExactArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			var req sdk.UpdateInstanceTypeRequest
			res, sel, err := place.maps()
			if err != nil {
				return err
			}
			if res != nil {
				req.Resources = &res
			}
			if sel != nil {
				req.NodeSelector = &sel
			}
			changed := cmd.Flags().Changed
			if changed("display-name") {
				req.DisplayName = &displayName
			}
			if changed("description") {
				req.Description = &description
			}
			if changed("cpu") {
				req.CPUCores = &cpu
			}
			for flag, dst := range map[string]**int{"memory": &req.MemoryGB, "storage": &req.StorageGB, "sort-order": &req.SortOrder} {
				if changed(flag) {
					v := map[string]int{"memory": memory, "storage": storage, "sort-order": sort}[flag]
					*dst = &v
				}
			}
			if req == (sdk.UpdateInstanceTypeRequest{}) {
				return fmt.Errorf("nothing to change: give at least one flag (dev8 instance-types edit --help)")
			}
			it, err := c.UpdateInstanceType(ctx, args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Changed instance type %s.\n", it.Name)
			return printInstanceTypes(cmd.OutOrStdout(), []sdk.InstanceType{*it}, time.Time{})
		}),
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&displayName, "display-name", "", "the name people see")
	cmd.Flags().StringVar(&description, "description", "", "what the type is for")
	cmd.Flags().Float64Var(&cpu, "cpu", 0, "vCPUs, 0.25-16 in steps of 0.25 (0.5, 2)")
	cmd.Flags().IntVar(&memory, "memory", 0, "memory in GB (1-64)")
	cmd.Flags().IntVar(&storage, "storage", 0, "default storage in GB (1-500)")
	cmd.Flags().IntVar(&sort, "sort-order", 0, "where it is listed (then by name)")
	place.register(cmd, true)
	return cmd
}

func newInstanceTypesActivateCommand(use, short, done string, active bool) *cobra.Command {
	var flags clientFlags
	long := `dev8 instance-types deactivate retires each instance type: it leaves the
listing and no new environment may use it; environments made from it keep
running as they were made. dev8 instance-types activate offers it again.`
	cmd := &cobra.Command{
		Use:     use + " <name>...",
		Short:   short,
		Long:    long,
		Example: "  dev8 instance-types " + use + " gpu",
		Args:    cobra.MinimumNArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			for _, name := range args {
				if _, err := c.UpdateInstanceType(ctx, name, sdk.UpdateInstanceTypeRequest{IsActive: &active}); err != nil {
					return fmt.Errorf("%s %s: %w", use, name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: instance type %s.\n", done, name)
			}
			return nil
		}),
	}
	flags.register(cmd)
	return cmd
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

func newUsersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "users",
		Aliases: []string{"user"},
		Short:   "Manage the installation's users (admins)",
		Long: `dev8 users lists the installation's users and changes their role and
suspension. It needs an admin's login. A suspended user's tokens and sessions
stop working at once; the last active admin can be neither demoted nor
suspended. Quotas are set with the API (PATCH /api/v1/users/{id}).`,
		Example: `  dev8 users ls
  dev8 users suspend mallory@example.com
  dev8 users unsuspend mallory@example.com
  dev8 users promote ada@example.com`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newUsersListCommand(),
		newUsersChangeCommand("suspend", "Suspend users: their tokens and sessions stop working at once", "Suspended", sdk.UserUpdate{Suspended: ptrTo(true)}),
		newUsersChangeCommand("unsuspend", "Lift users' suspension", "Unsuspended", sdk.UserUpdate{Suspended: ptrTo(false)}),
		newUsersChangeCommand("promote", "Make users admins", "Promoted", sdk.UserUpdate{Role: ptrTo("admin")}),
		newUsersChangeCommand("demote", "Make admins members", "Demoted", sdk.UserUpdate{Role: ptrTo("member")}),
	)
	return cmd
}

func ptrTo[T any](v T) *T { return &v }

func newUsersListCommand() *cobra.Command {
	var (
		flags     clientFlags
		asJSON    jsonFlag
		email     string
		role      string
		suspended string
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List users",
		Long: `dev8 users ls lists every user, oldest first, with role, whether suspended,
and quota overrides ("-": the server's default).`,
		Example: `  dev8 users ls
  dev8 users ls --role admin
  dev8 users ls --suspended true --json`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			f := sdk.UserFilter{Email: email, Role: role}
			if suspended != "" {
				b, err := strconv.ParseBool(suspended)
				if err != nil {
					return fmt.Errorf("--suspended: want true or false, got %q", suspended)
				}
				f.Suspended = &b
			}
			users, err := c.AllUsers(ctx, f)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), asJSON, users, "", printUsers)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "users")
	cmd.Flags().StringVar(&email, "email", "", "only users whose email contains this")
	cmd.Flags().StringVar(&role, "role", "", "only users with this role: admin or member")
	cmd.Flags().StringVar(&suspended, "suspended", "", "true: only suspended users; false: only active ones")
	return cmd
}

func printUsers(w io.Writer, users []sdk.ManagedUser, now time.Time) error {
	tw := newTable(w, "ID", "EMAIL", "ROLE", "STATUS", "MAX ENVS", "MAX RUNNING", "BUDGET", "CREATED")
	for _, u := range users {
		status := "active"
		if u.Suspended {
			status = "suspended"
		}
		q := u.QuotaOverrides
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.Role, status,
			overrideString(q.MaxEnvironments), overrideString(q.MaxRunningEnvironments), budgetString(q.MonthlyBudgetUSD), ago(now, u.CreatedAt))
	}
	return tw.Flush()
}

func overrideString(v *int) string {
	switch {
	case v == nil:
		return "-"
	case *v == 0:
		return "unlimited"
	}
	return strconv.Itoa(*v)
}

func budgetString(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v == 0:
		return "none"
	}
	return fmt.Sprintf("$%.2f", *v)
}

// newUsersChangeCommand is a command that applies one change to each user
// named (by id or email).
func newUsersChangeCommand(use, short, done string, change sdk.UserUpdate) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   use + " <id-or-email>...",
		Short: short,
		Long: short + `. Each user is named by id (usr_...) or by exact email
address; they are changed in order, and the first refusal stops the command
(the last active admin can be neither demoted nor suspended).`,
		Example: "  dev8 users " + use + " ada@example.com usr_a1b2c3d4e5f6g7h8i9j0",
		Args:    cobra.MinimumNArgs(1),
		RunE: forEachNamed(&flags, (*sdk.Client).FindUser, func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, arg string, u *sdk.ManagedUser) error {
			if _, _, err := c.UpdateUser(ctx, u.ID, change); err != nil {
				return fmt.Errorf("%s %s: %w", use, arg, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s).\n", done, u.Email, u.ID)
			return nil
		}),
	}
	flags.register(cmd)
	return cmd
}

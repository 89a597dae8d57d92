package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

func newInvitesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "invites",
		Aliases: []string{"invite"},
		Short:   "Invite people to sign up (admins)",
		Long: `dev8 invites makes, lists and revokes invitations to sign up. It needs an
admin's login. Under the server's default signup policy (invite) the first
user signs up by themself and becomes the admin; everyone after needs an
invite (or, when the server allows their email domain, a GitHub or Google
sign-in). An invite makes one account, lasts 7 days unless told otherwise,
and may be bound to one email address.`,
		Example: `  dev8 invites create --email ada@example.com
  dev8 invites create --role admin --expires-in-days 1
  dev8 invites ls
  dev8 invites revoke inv_k3x9m2p4q7r8s1t5u6v0`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newInvitesCreateCommand(), newInvitesListCommand(), newInvitesRevokeCommand())
	return cmd
}

func newInvitesCreateCommand() *cobra.Command {
	var (
		flags clientFlags
		req   sdk.CreateInviteRequest
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make an invite and print its link (shown only once)",
		Long: `dev8 invites create makes an invite and prints its link on standard output,
alone on a line: <access URL>/signup?invite=TOKEN. Send it to the person;
opening it shows the sign-up page with the invite applied. The link is shown
this once: the server keeps only a hash of its token.`,
		Example: `  dev8 invites create --email ada@example.com
  LINK=$(dev8 invites create --role admin --expires-in-days 1)`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			inv, err := c.CreateInvite(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), inv.URL)
			who := "anyone with the link"
			if inv.Invite.Email != "" {
				who = inv.Invite.Email
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Invite %s for %s, as %s, expires %s. Send the link now: it is not shown again.\n",
				inv.Invite.ID, who, inv.Invite.Role, inv.Invite.ExpiresAt.Local().Format(time.DateTime))
			return nil
		}),
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&req.Email, "email", "", "only this address may use the invite (default: anyone with the link)")
	cmd.Flags().StringVar(&req.Role, "role", "member", "what the invited person becomes: member or admin")
	cmd.Flags().IntVar(&req.ExpiresInDays, "expires-in-days", 7, "how long the invite lasts, 1 to 90 days")
	return cmd
}

func newInvitesListCommand() *cobra.Command {
	var (
		flags  clientFlags
		asJSON jsonFlag
		all    bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List pending invites",
		Long: `dev8 invites ls lists the pending invites, newest first: who each is for,
the role it gives and when it expires. With --all it lists used, revoked and
expired ones too, with their state. Links are never shown again.`,
		Example: `  dev8 invites ls
  dev8 invites ls --all --json`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			invites, err := c.AllInvites(ctx, all)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), asJSON, invites, "No pending invites. Make one with: dev8 invites create", printInvites)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "invites")
	cmd.Flags().BoolVar(&all, "all", false, "also used, revoked and expired invites")
	return cmd
}

func printInvites(w io.Writer, invites []sdk.Invite, now time.Time) error {
	tw := newTable(w, "ID", "FOR", "ROLE", "STATE", "CREATED", "EXPIRES")
	for _, inv := range invites {
		who := inv.Email
		if who == "" {
			who = "anyone"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", inv.ID, who, inv.Role, inv.State, ago(now, inv.CreatedAt), inv.ExpiresAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func newInvitesRevokeCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:     "revoke <id>...",
		Aliases: []string{"rm", "delete"},
		Short:   "Revoke invites",
		Long: `dev8 invites revoke revokes each invite by id (see dev8 invites ls): its link
stops working at once. A used invite cannot be revoked; suspend the account
it made instead (dev8 users suspend).`,
		Example: `  dev8 invites revoke inv_k3x9m2p4q7r8s1t5u6v0`,
		Args:    cobra.MinimumNArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			for _, id := range args {
				if _, err := c.RevokeInvite(ctx, id); err != nil {
					return fmt.Errorf("revoke %s: %w", id, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked invite %s.\n", id)
			}
			return nil
		}),
	}
	flags.register(cmd)
	return cmd
}

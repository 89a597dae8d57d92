package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

func newTokensCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Manage your API tokens",
		Long: `dev8 tokens creates, lists and revokes API tokens: bearer tokens for scripts
and CI (send them as Authorization: Bearer <token>, or set DEV8_TOKEN).`,
		Example: `  dev8 tokens create ci --expires-in-days 90
  dev8 tokens ls
  dev8 tokens rm tok_q2w3e4r5t6y7u8i9o0pa`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTokensCreateCommand(), newTokensListCommand(), newTokensRemoveCommand())
	return cmd
}

func newTokensCreateCommand() *cobra.Command {
	var (
		flags clientFlags
		days  int
	)
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create an API token and print its secret (shown only once)",
		Long: `dev8 tokens create makes a named token and prints its secret on standard
output, alone on a line. The secret is shown this once: the server keeps only
its hash. Without --expires-in-days the token lasts the server's default
lifetime (30 days unless configured).`,
		Example: `  dev8 tokens create ci
  DEV8_TOKEN=$(dev8 tokens create deploy --expires-in-days 7)`,
		Args: cobra.ExactArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			secret, tok, err := c.CreateToken(ctx, args[0], days)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			expires := "never"
			if tok.ExpiresAt != nil {
				expires = tok.ExpiresAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %q (%s), expires %s. Copy the secret now: it is not shown again.\n", tok.Name, tok.ID, expires)
			return nil
		}),
	}
	flags.register(cmd)
	cmd.Flags().IntVar(&days, "expires-in-days", 0, "lifetime in days (default: the server's default lifetime)")
	return cmd
}

func newTokensListCommand() *cobra.Command {
	var (
		flags  clientFlags
		asJSON jsonFlag
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your API tokens",
		Long: `dev8 tokens ls lists your API tokens, newest first, with when each was
created, last used and expires. Secrets are never shown. (dev8 login makes a
session, not a token; tokens named "login" were made by older servers.)`,
		Example: `  dev8 tokens ls
  dev8 tokens ls --json | jq -r '.[] | select(.name == "ci") | .id'`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			toks, err := c.Tokens(ctx)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), asJSON, toks, "No tokens. Create one with: dev8 tokens create <name>", printTokens)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "tokens")
	return cmd
}

func printTokens(w io.Writer, toks []sdk.APIToken, now time.Time) error {
	tw := newTable(w, "ID", "NAME", "CREATED", "LAST USED", "EXPIRES")
	for _, t := range toks {
		lastUsed := "never"
		if t.LastUsedAt != nil {
			lastUsed = ago(now, *t.LastUsedAt)
		}
		expires := "never"
		if t.ExpiresAt != nil {
			expires = t.ExpiresAt.Local().Format(time.DateOnly)
			if !t.ExpiresAt.After(now) {
				expires += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, ago(now, t.CreatedAt), lastUsed, expires)
	}
	return tw.Flush()
}

func newTokensRemoveCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:     "rm <id>...",
		Aliases: []string{"revoke", "delete"},
		Short:   "Revoke API tokens",
		Long: `dev8 tokens rm revokes each token by id (see dev8 tokens ls). A revoked token
stops working at once. Revoking the token this command line is logged in
with logs it out of the server.`,
		Example: `  dev8 tokens rm tok_q2w3e4r5t6y7u8i9o0pa`,
		Args:    cobra.MinimumNArgs(1),
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			for _, id := range args {
				if err := c.RevokeToken(ctx, id); err != nil {
					return fmt.Errorf("revoke %s: %w", id, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s.\n", id)
			}
			return nil
		}),
	}
	flags.register(cmd)
	return cmd
}

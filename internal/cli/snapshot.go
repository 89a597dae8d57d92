package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

func newSnapshotCommand() *cobra.Command {
	var (
		flags clientFlags
		wait  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "snapshot <name>",
		Short: "Snapshot an environment's workspace",
		Long: `dev8 snapshot takes a snapshot of a running environment's workspace (by
name or id) on the server and waits until it is stored. Snapshots are
incremental: unchanged files are not read again and only new chunks are
stored. node_modules, .cache and build outputs (dist, target, ...) are left
out. dev8 snapshots lists them, dev8 restore brings one back.`,
		Example: `  dev8 snapshot my-env
  dev8 snapshot my-env --no-wait`,
		Args: cobra.ExactArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, env, err := flags.environment(ctx, args[0])
			if err != nil {
				return err
			}
			s, err := c.CreateSnapshot(ctx, env.ID)
			if err != nil {
				return fmt.Errorf("snapshot %q: %w", env.Name, err)
			}
			out := cmd.OutOrStdout()
			if wait.noWait {
				fmt.Fprintf(out, "Snapshot %s of %q is %s.\n", s.ID, env.Name, s.Status)
				return nil
			}
			fmt.Fprintf(out, "Snapshotting %q (%s)...\n", env.Name, s.ID)
			wctx, cancel := wait.context(ctx)
			defer cancel()
			s, err = c.WaitForSnapshot(wctx, env.ID, s.ID, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Snapshot %s: %d files, %s, %s new, in %s.\n", s.ID, s.FileCount, humanSize(s.SizeBytes),
				humanSize(s.ChangedBytes), time.Duration(s.DurationMS)*time.Millisecond)
			return nil
		}),
	}
	flags.register(cmd)
	wait.register(cmd, "the snapshot is stored")
	return cmd
}

func newSnapshotsCommand() *cobra.Command {
	var (
		flags  clientFlags
		asJSON jsonFlag
	)
	cmd := &cobra.Command{
		Use:   "snapshots <name>",
		Short: "List an environment's snapshots",
		Long: `dev8 snapshots lists an environment's snapshots, newest first: when each
was taken, why, its status, how many files and bytes it holds and how much it
added to the server's repository.`,
		Example: `  dev8 snapshots my-env
  dev8 snapshots my-env --json | jq -r '.[0].id'`,
		Args: cobra.ExactArgs(1),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, env, err := flags.environment(ctx, args[0])
			if err != nil {
				return err
			}
			list, err := c.Snapshots(ctx, env.ID)
			if err != nil {
				return err
			}
			none := fmt.Sprintf("No snapshots of %q. Take one with: dev8 snapshot %s", env.Name, env.Name)
			return printList(cmd.OutOrStdout(), asJSON, list, none, printSnapshots)
		}),
	}
	flags.register(cmd)
	asJSON.register(cmd, "snapshots")
	cmd.AddCommand(newSnapshotsVerifyCommand())
	return cmd
}

func newSnapshotsVerifyCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the server's whole snapshot repository (admins)",
		Long: `dev8 snapshots verify asks the server to read its whole snapshot repository:
every snapshot's record and file trees, and every chunk they use, checked
against its hash. It lists each missing or corrupt blob with the snapshots
and paths it breaks, and exits 1 when it found any. (An environment named
"verify" is listed with its id: dev8 snapshots env_….)`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error {
			rep, err := c.VerifySnapshots(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Checked %d snapshots, %d trees, %d chunks (%s).\n", rep.Snapshots, rep.Trees, rep.Chunks, humanSize(rep.Bytes))
			for _, r := range rep.BadRecords {
				fmt.Fprintf(out, "unreadable snapshot record %s\n", r)
			}
			for _, p := range rep.Problems {
				what := "corrupt"
				if p.Missing {
					what = "missing"
				}
				fmt.Fprintf(out, "%s %s %s: snapshots %s; paths %s\n", what, p.Kind, p.ID, strings.Join(p.Snapshots, ", "), strings.Join(p.Paths, ", "))
			}
			if !rep.OK {
				return fmt.Errorf("the repository has %d problem(s) and %d unreadable record(s)", len(rep.Problems), len(rep.BadRecords))
			}
			fmt.Fprintln(out, "The repository is intact.")
			return nil
		}),
	}
	flags.register(cmd)
	return cmd
}

func printSnapshots(w io.Writer, list []sdk.Snapshot, now time.Time) error {
	tw := newTable(w, "ID", "TAKEN", "TRIGGER", "STATUS", "FILES", "SIZE", "NEW")
	for _, s := range list {
		status := s.Status
		if s.Error != "" {
			status += ": " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, ago(now, s.CreatedAt), s.Trigger, status, s.FileCount,
			humanSize(s.SizeBytes), humanSize(s.ChangedBytes))
	}
	return tw.Flush()
}

func newRestoreCommand() *cobra.Command {
	var (
		flags clientFlags
		path  string
		yes   bool
	)
	cmd := &cobra.Command{
		Use:   "restore <name> <snapshot>",
		Short: "Restore a snapshot into its environment",
		Long: `dev8 restore makes a running environment's workspace (or, with --path, one
file or directory of it) exactly what it was in the snapshot: files are
replaced, and files the snapshot does not have are removed, except those the
snapshot left out (node_modules, caches, build outputs). Every chunk is
verified; a file that cannot be restored (a missing or corrupt chunk) is
reported and the rest is restored, and the command then fails.

The snapshot is its id (snap_…), the start of one, or "latest" (the newest
completed snapshot; dev8 snapshots lists them). It asks before replacing
files, showing the environment and the snapshot with its time, unless --yes
is given; without a terminal to ask on, it needs --yes.`,
		Example: `  dev8 restore my-env latest
  dev8 restore my-env snap_q2w3e4r5t6y7u8i9o0pa --yes
  dev8 restore my-env snap_q2w3 --path src/main.go`,
		Args: cobra.ExactArgs(2),
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, env, err := flags.environment(ctx, args[0])
			if err != nil {
				return err
			}
			snap, err := resolveSnapshot(ctx, c, env, args[1])
			if err != nil {
				return err
			}
			what := "the workspace"
			if path != "" {
				what = path
			}
			if !yes {
				question := fmt.Sprintf("Restore %s of %q from snapshot %s?\nFiles there are replaced, and files the snapshot does not have are removed.", what, env.Name, describeSnapshot(snap))
				if err := confirm(cmd, question, "--yes"); err != nil {
					return fmt.Errorf("nothing restored: %w", err)
				}
			}
			res, err := c.RestoreSnapshot(ctx, env.ID, snap.ID, path)
			if err != nil {
				return fmt.Errorf("restore %q: %w", env.Name, err)
			}
			if res.Path != "" {
				what = res.Path
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored %s of %q from %s: %d files, %s; removed %d entries.\n", what, env.Name, snap.ID,
				res.Files, humanSize(res.Bytes), res.Removed)
			for _, f := range res.Failures {
				fmt.Fprintf(cmd.ErrOrStderr(), "not restored: %s: %s\n", f.Path, f.Error)
			}
			if len(res.Failures) > 0 {
				return fmt.Errorf("%d entries could not be restored", len(res.Failures))
			}
			return nil
		}),
	}
	flags.register(cmd)
	f := cmd.Flags()
	f.StringVar(&path, "path", "", "restore only this file or directory (relative to the workspace)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (needed without a terminal)")
	return cmd
}

// humanSize formats a byte count with a binary unit.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

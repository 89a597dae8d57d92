package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

// latestSnapshot is the snapshot reference that means an environment's
// newest COMPLETED snapshot.
const latestSnapshot = "latest"

// resolveSnapshot finds one of env's snapshots by reference: "latest" (the
// newest COMPLETED one), an id (snap_…), or the start of one that no other
// snapshot of env shares, with or without "snap_". Only a COMPLETED snapshot
// can be restored or forked, so any other is an error saying so.
func resolveSnapshot(ctx context.Context, c *sdk.Client, env *sdk.Environment, ref string) (*sdk.Snapshot, error) {
	list, err := c.Snapshots(ctx, env.ID)
	if err != nil {
		return nil, err
	}
	if ref == latestSnapshot {
		for i := range list { // newest first
			if list[i].Status == sdk.SnapshotCompleted {
				return &list[i], nil
			}
		}
		return nil, fmt.Errorf("%q has no completed snapshot: take one with: dev8 snapshot %s", env.Name, env.Name)
	}
	var found []*sdk.Snapshot
	for i := range list {
		s := &list[i]
		if s.ID == ref {
			found = []*sdk.Snapshot{s}
			break
		}
		if ref != "" && (strings.HasPrefix(s.ID, ref) || strings.HasPrefix(s.ID, "snap_"+ref)) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("snapshot %q of %q not found: dev8 snapshots %s lists them (or use %q)", ref, env.Name, env.Name, latestSnapshot)
	case 1:
		if s := found[0]; s.Status != sdk.SnapshotCompleted {
			return nil, fmt.Errorf("snapshot %s of %q is %s, not COMPLETED: only a completed snapshot can be restored or forked", s.ID, env.Name, s.Status)
		}
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, s := range found {
		ids[i] = s.ID
	}
	return nil, fmt.Errorf("snapshot %q of %q is ambiguous: it starts %d snapshots (%s); give more of the id", ref, env.Name, len(found), strings.Join(ids, ", "))
}

// describeSnapshot is a snapshot as a question shows it: its id, when it was
// taken and what it holds.
func describeSnapshot(s *sdk.Snapshot) string {
	return fmt.Sprintf("%s (taken %s, %s; %d files, %s)", s.ID, s.CreatedAt.Local().Format("2006-01-02 15:04 MST"),
		ago(time.Now(), s.CreatedAt), s.FileCount, humanSize(s.SizeBytes))
}

// confirm asks question on the terminal and returns nil only for a yes.
// Without a terminal on standard input there is no one to ask: it refuses,
// naming the flag that answers for the user (skip).
func confirm(cmd *cobra.Command, question, skip string) error {
	if _, tty := terminalFd(cmd.InOrStdin()); !tty {
		return fmt.Errorf("no terminal on standard input to ask for confirmation: pass %s", skip)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, err := readLine(bufio.NewReader(cmd.InOrStdin()))
	if err != nil {
		return err
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("not confirmed")
	}
	return nil
}

// forkSource resolves dev8 create's --from-snapshot (ref) and --from (the
// source environment's name or id) into the snapshot the new environment
// starts from. With --from, ref may be "latest" (its default), an id or the
// start of one; without it, only an id, which may be of an environment
// since deleted. The source environment is nil then.
func forkSource(ctx context.Context, c *sdk.Client, from, ref string) (*sdk.Snapshot, *sdk.Environment, error) {
	if from == "" {
		switch {
		case ref == latestSnapshot:
			return nil, nil, errors.New("--from-snapshot latest needs --from <environment>: the one whose newest completed snapshot to start from")
		case !strings.HasPrefix(ref, "snap_"):
			return nil, nil, fmt.Errorf("--from-snapshot %q: give a snapshot id (snap_…), or name its environment with --from to use latest or the start of an id", ref)
		}
		// The server checks it is one of the caller's completed snapshots.
		return &sdk.Snapshot{ID: ref}, nil, nil
	}
	if ref == "" {
		ref = latestSnapshot
	}
	src, err := c.FindEnvironment(ctx, from)
	if err != nil {
		return nil, nil, fmt.Errorf("--from %q: %w", from, err)
	}
	snap, err := resolveSnapshot(ctx, c, src, ref)
	if err != nil {
		return nil, nil, err
	}
	return snap, src, nil
}

// forkFrom fills in req's fork from --from and --from-snapshot, and says
// which snapshot it starts from.
func forkFrom(ctx context.Context, cmd *cobra.Command, c *sdk.Client, req *sdk.CreateEnvironmentRequest, from, ref string) error {
	snap, src, err := forkSource(ctx, c, from, ref)
	if err != nil {
		return err
	}
	req.FromSnapshot = snap.ID
	if src == nil {
		fmt.Fprintf(cmd.OutOrStdout(), "Starting from snapshot %s.\n", snap.ID)
		return nil
	}
	if req.TemplateName == "" && req.BaseImage == "" {
		req.TemplateName = src.TemplateName
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Starting from snapshot %s of %q.\n", describeSnapshot(snap), src.Name)
	return nil
}

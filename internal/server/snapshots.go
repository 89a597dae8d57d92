package server

import (
	"context"
	"fmt"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
)

// openSnapshotRepo opens (creating it on first start) the installation's
// snapshot repository in dir and marks the snapshots a previous server left
// unfinished as failed: the streams that carried them are gone.
func openSnapshotRepo(ctx context.Context, db *store.DB, dir string) (snapshot.Store, error) {
	st, err := snapshot.OpenDirStore(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot repository: %w", err)
	}
	if _, err := snapshot.Open(ctx, st); err != nil {
		return nil, fmt.Errorf("snapshot repository %s: %w", dir, err)
	}
	if _, err := db.FailUnfinishedBackups(ctx, "the server restarted while the snapshot was running"); err != nil {
		return nil, err
	}
	return st, nil
}

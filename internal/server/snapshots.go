package server

import (
	"context"
	"fmt"
	"log/slog"

	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
)

// openSnapshotRepo opens (creating it on first start) the installation's
// snapshot repository in the store that spec names (see
// backup.OpenStore) and marks the snapshots a previous server left
// unfinished as failed: the streams that carried them are gone.
func openSnapshotRepo(ctx context.Context, db *store.DB, spec, dataDir string, log *slog.Logger) (snapshot.Store, error) {
	st, where, err := backup.OpenStore(ctx, spec, dataDir)
	if err != nil {
		return nil, fmt.Errorf("snapshot repository: %w", err)
	}
	if _, err := snapshot.Open(ctx, st); err != nil {
		return nil, fmt.Errorf("snapshot repository %s: %w", where, err)
	}
	if _, err := db.FailUnfinishedBackups(ctx, "the server restarted while the snapshot was running"); err != nil {
		return nil, err
	}
	log.Info("snapshot repository", "store", where)
	return st, nil
}

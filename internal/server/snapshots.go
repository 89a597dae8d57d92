package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/snapshot/azblobstore"
	"dev8.dev/dev8/internal/snapshot/s3store"
	"dev8.dev/dev8/internal/store"
)

// openSnapshotRepo opens (creating it on first start) the installation's
// snapshot repository in the store that spec names (see
// openSnapshotStore) and marks the snapshots a previous server left
// unfinished as failed: the streams that carried them are gone.
func openSnapshotRepo(ctx context.Context, db *store.DB, spec, dataDir string, log *slog.Logger) (snapshot.Store, error) {
	st, where, err := openSnapshotStore(ctx, spec, dataDir)
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

// openSnapshotStore opens the store --snapshot-store names:
//
//	""                    a directory store in <dataDir>/backups
//	/path, file:///path   a directory store there
//	s3://bucket/prefix    an S3 bucket (s3store.Open)
//	azblob://container/…  an Azure Blob container (azblobstore.Open)
//
// It returns the store and a description for logs and errors, which never
// holds credentials (the object stores take them from the environment only).
func openSnapshotStore(ctx context.Context, spec, dataDir string) (snapshot.Store, string, error) {
	dir := ""
	switch u, err := url.Parse(spec); {
	case spec == "":
		dir = filepath.Join(dataDir, "backups")
	case err != nil || u.Scheme == "":
		dir = spec
	case u.Scheme == "file":
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || u.RawQuery != "" {
			return nil, "", fmt.Errorf("store %q: want file:///absolute/path", spec)
		}
		dir = u.Path
	case u.Scheme == "s3":
		st, err := s3store.Open(ctx, u)
		if err != nil {
			return nil, "", err
		}
		return st, st.String(), nil
	case u.Scheme == "azblob":
		st, err := azblobstore.Open(ctx, u)
		if err != nil {
			return nil, "", err
		}
		return st, st.String(), nil
	default:
		return nil, "", fmt.Errorf("store: unknown scheme %q: want a directory, file:///path, s3://bucket/prefix or azblob://container/prefix", u.Scheme)
	}
	st, err := snapshot.OpenDirStore(dir)
	if err != nil {
		return nil, "", err
	}
	return st, "directory " + st.Root(), nil
}

package backup

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/snapshot/azblobstore"
	"dev8.dev/dev8/internal/snapshot/s3store"
)

// OpenStore opens the snapshot store --snapshot-store names:
//
//	""                    a directory store in <dataDir>/backups
//	/path, file:///path   a directory store there
//	s3://bucket/prefix    an S3 bucket (s3store.Open)
//	azblob://container/…  an Azure Blob container (azblobstore.Open)
//
// It returns the store and a description for logs and errors, which never
// holds credentials (the object stores take them from the environment only).
func OpenStore(ctx context.Context, spec, dataDir string) (snapshot.Store, string, error) {
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

package snapshot

import (
	"context"
	"strings"

	"golang.org/x/sync/errgroup"
)

// What the object stores (s3store, azblobstore) share: the inverse of
// BlobKey for their listings, and the bounded fan-out of their Missing (one
// small request a blob).

// MissingConcurrency bounds the requests an object store's Missing makes at
// once.
const MissingConcurrency = 16

// ParseBlobKey is the inverse of BlobKey: it returns the id of the blob
// stored under key ("data/<2 hex>/<64 hex>"), and false for any other key
// (nothing else is written under data/, but a listing may meet it).
func ParseBlobKey(key string) (ID, bool) {
	rest, ok := strings.CutPrefix(key, "data/")
	if !ok {
		return ID{}, false
	}
	dir, name, ok := strings.Cut(rest, "/")
	if !ok {
		return ID{}, false
	}
	id, err := ParseID(name)
	if err != nil || dir != name[:2] {
		return ID{}, false
	}
	return id, true
}

// ForEachID calls fn for every id (i is its index in ids), up to
// MissingConcurrency calls at once. The first error cancels the context
// the other calls get, and is returned.
func ForEachID(ctx context.Context, ids []ID, fn func(ctx context.Context, i int, id ID) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(MissingConcurrency)
	for i, id := range ids {
		g.Go(func() error { return fn(gctx, i, id) })
	}
	return g.Wait()
}

// Selected returns the ids whose flag is set, in their order.
func Selected(ids []ID, flags []bool) []ID {
	var out []ID
	for i, id := range ids {
		if flags[i] {
			out = append(out, id)
		}
	}
	return out
}

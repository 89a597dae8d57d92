package snapshot

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned (wrapped) by a Store for a blob or record it does
// not hold.
var ErrNotFound = errors.New("not found")

// Record kinds: small named documents kept beside the blobs.
const (
	KindConfig   = "config"    // one record, "config": the repository's Config
	KindSnapshot = "snapshots" // one record per finished snapshot
	KindLock     = "locks"     // one record per snapshot being written
)

// BlobInfo describes one stored blob.
type BlobInfo struct {
	ID   ID
	Size int64 // stored (compressed) size in bytes
	// Touched is when the blob was last written or refreshed by Missing.
	// Prune never deletes a blob touched after its cutoff.
	Touched time.Time
}

// Store holds a repository: content-addressed blobs (chunks and trees, in
// their stored, compressed form) and small named records.
//
// The directory store ([DirStore]) is the default. The interface is shaped so
// that an object store (S3, Azure Blob) or a client that talks to the Dev8
// server can implement it too: Missing is one batched call ("which of these
// do you lack?") made before sending chunks, records are whole documents
// written atomically, and Delete is conditional so that pruning stays safe
// while a snapshot is being written (see the package documentation).
//
// Implementations must be safe for concurrent use.
type Store interface {
	// Has reports whether the blob is stored. It does not refresh it.
	Has(ctx context.Context, id ID) (bool, error)
	// Missing returns the ids among ids that the store does not hold, in
	// the order given. Every id it does hold is refreshed (its Touched time
	// becomes now), which tells a concurrent Prune that a snapshot in
	// progress is about to reference it.
	Missing(ctx context.Context, ids []ID) ([]ID, error)
	// Put stores a blob. It is atomic (a reader or a crash never sees a
	// partial blob) and idempotent; data must hash (decoded) to id. After
	// a crash a blob may be absent, never present with other contents.
	Put(ctx context.Context, id ID, data []byte) error
	// Get returns a blob's stored bytes, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id ID) ([]byte, error)
	// List calls fn for every stored blob, in no particular order.
	List(ctx context.Context, fn func(BlobInfo) error) error
	// Delete removes a blob if it was last touched before notAfter (any
	// time when notAfter is zero). It reports whether it removed it. The
	// check and the removal must be atomic with respect to Missing: a blob
	// that Missing reported present and refreshed is never lost.
	Delete(ctx context.Context, id ID, notAfter time.Time) (bool, error)

	// PutRecord atomically creates or replaces a record. Every blob whose
	// Put returned before PutRecord was called must be durable before the
	// record is (DirStore: each Put is durable when it returns).
	PutRecord(ctx context.Context, kind, name string, data []byte) error
	// GetRecord returns a record, or an error wrapping ErrNotFound.
	GetRecord(ctx context.Context, kind, name string) ([]byte, error)
	// ListRecords returns the names of the records of one kind, sorted.
	ListRecords(ctx context.Context, kind string) ([]string, error)
	// DeleteRecord removes a record; removing an absent one is not an error.
	DeleteRecord(ctx context.Context, kind, name string) error
}

// tempCleaner is implemented by stores that can leave temporary files behind
// after a crash; Prune removes the old ones.
type tempCleaner interface {
	RemoveTemp(ctx context.Context, olderThan time.Time) (int, error)
}

// Package s3store is a [snapshot.Store] in a bucket of an S3-compatible
// object store: AWS S3, MinIO, or any server that speaks the S3 API with
// strong read-after-write consistency (AWS has it since December 2020; MinIO
// always had it).
//
// It is a package of its own so that only the binaries that open such a
// repository (the server) link an S3 client; the supervisor imports
// internal/snapshot only.
//
// # Layout
//
// Under an optional key prefix:
//
//	data/<first 2 hex digits>/<64 hex digits>   blobs
//	<kind>/<name>                               records (config, snapshots, locks)
//	deleting/<64 hex digits>.<random>           intents of Delete calls in progress
//
// Put and PutRecord are one PutObject each (an object appears whole or not
// at all, and is durable when the call returns). A blob's Touched time is
// its LastModified; Missing refreshes a present blob by copying it onto
// itself on the server (CopyObject with replaced metadata), which gives it
// a new LastModified without moving its bytes through this process.
//
// # Delete and Missing
//
// The contract asks that Delete's check of the blob's time and its removal
// be atomic with respect to Missing. S3 offers nothing that does this in one
// request on both AWS and MinIO: AWS general purpose buckets accept
// If-Match on DeleteObject only with an ETag, and a copy onto itself keeps
// the ETag (it is the MD5 of the unchanged bytes), so the ETag cannot tell a
// refreshed blob from a stale one; x-amz-if-match-last-modified-time is
// for directory buckets only; MinIO ignores conditions on DeleteObject.
// Object versioning would work but must be turned on for the bucket and
// leaves a noncurrent version behind every refresh. So the store uses
// intents, as in Dekker's mutual exclusion, which needs only strongly
// consistent single-key operations and listings:
//
//   - Delete writes an intent deleting/<id>.<random> (M), then reads the
//     blob's LastModified (H). If the blob is absent or was touched after
//     notAfter it stops. Otherwise it removes the blob (D) and then its
//     intent (X).
//   - Missing refreshes each present blob (R), then lists deleting/ once
//     (L): a refreshed blob with a live intent is reported missing (the
//     writer will upload it). Each other refreshed blob is then checked
//     once more (V): if it is gone by now it is reported missing too.
//   - Put uploads the blob (P), then lists the intents for it (L) and
//     checks the blob is there (V). While a live intent exists it waits for
//     it to go away; whenever the blob is found absent it uploads again.
//
// Why no refreshed blob is lost: take a Delete that removes a blob Missing
// reported present. If its H came after R, H saw the refreshed time, which
// is after notAfter (Prune's cutoff lies at least a second in the past), so
// it would not have removed it. So H, and M before it, came before R, and
// so before L. Either L saw the intent (Missing reported the blob missing)
// or the intent was gone by L, which means D had already happened, and V,
// after L, saw the blob absent. The same argument, with P for R, covers a
// blob uploaded by Put after Missing reported it missing. Two Deletes of
// one blob write distinct intents, so one finishing does not hide the other.
//
// An intent is live for intentTTL after it was written (by the server's
// clock, compared with the refreshed or uploaded blob's LastModified):
// Delete gives up without removing the blob if more than deleteWindow has
// passed since it wrote its intent, so an older intent belongs to a Delete
// that crashed, and is ignored (Prune removes it later, see RemoveTemp). The
// one approximation: a DeleteObject request is sent at most deleteWindow
// after its intent and with that as its deadline, but the protocol assumes
// the server also acts on it within intentTTL (two minutes) of the intent;
// a request held up in the network for longer than that could still remove
// a blob refreshed meanwhile.
//
// Times: Delete compares the server's LastModified with notAfter from the
// caller's clock, so the two clocks must agree to well within Prune's grace
// period (one hour by default; S3 itself refuses requests signed with a clock
// more than 15 minutes off).
package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"dev8.dev/dev8/internal/snapshot"
)

const (
	// deleteWindow: Delete removes a blob only within this time of writing
	// its intent.
	deleteWindow = 30 * time.Second
	// intentTTL: an intent older than this (relative to the blob's
	// LastModified) is a crashed Delete's and is ignored.
	intentTTL = 2 * time.Minute
)

// Store is a snapshot.Store in an S3 bucket. Create it with [Open] or [New].
type Store struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	where  string // for messages and logs: s3://bucket/prefix and the endpoint

	// Test hooks (nil outside tests) at the points where the protocol
	// above can interleave.
	hookDeleteChecked func(id snapshot.ID) // Delete: after H, before D
	hookRefreshed     func(id snapshot.ID) // Missing: after R, before L
	hookPutWaiting    func(id snapshot.ID) // Put: a live intent was seen
}

var _ snapshot.Store = (*Store)(nil)

// String describes the store for logs: bucket, prefix and endpoint, no
// credentials.
func (s *Store) String() string { return s.where }

func (s *Store) blobKey(id snapshot.ID) string { return s.prefix + snapshot.BlobKey(id) }

func (s *Store) intentPrefix() string { return s.prefix + "deleting/" }

func (s *Store) recordKey(kind, name string) (string, error) {
	if err := snapshot.ValidRecordName(kind, name); err != nil {
		return "", err
	}
	return s.prefix + kind + "/" + name, nil
}

// isNotFound reports whether err says the object does not exist (not the
// bucket: a vanished bucket is an error).
func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == "NotFound"
}

// stat returns the blob's LastModified, or ok=false if it is absent.
func (s *Store) stat(ctx context.Context, key string) (time.Time, bool, error) {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return info.LastModified, true, nil
}

func (s *Store) put(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true, // one request: atomic, and no parts left behind
	})
	return err
}

// list calls fn for every object under prefix: all of them if recursive,
// else the direct children only ("directories" are skipped).
func (s *Store) list(ctx context.Context, prefix string, recursive bool, fn func(minio.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister if fn ends the loop early
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive}) {
		if obj.Err != nil {
			return obj.Err
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a common prefix
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Has implements snapshot.Store.
func (s *Store) Has(ctx context.Context, id snapshot.ID) (bool, error) {
	_, ok, err := s.stat(ctx, s.blobKey(id))
	if err != nil {
		return false, fmt.Errorf("snapshot: s3: stat blob %s: %w", id.Short(), err)
	}
	return ok, nil
}

// Missing implements snapshot.Store: every present blob is copied onto
// itself, which sets its LastModified to now; see the package documentation
// for how this interlocks with Delete.
func (s *Store) Missing(ctx context.Context, ids []snapshot.ID) ([]snapshot.ID, error) {
	absent := make([]bool, len(ids))
	touched := make([]time.Time, len(ids)) // zero where absent
	err := snapshot.ForEachID(ctx, ids, func(ctx context.Context, i int, id snapshot.ID) error {
		t, ok, err := s.refresh(ctx, id)
		if err != nil {
			return fmt.Errorf("snapshot: s3: refresh blob %s: %w", id.Short(), err)
		}
		absent[i], touched[i] = !ok, t
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(absent, false) {
		return slices.Clone(ids), nil
	}
	if s.hookRefreshed != nil {
		for i, id := range ids {
			if !absent[i] {
				s.hookRefreshed(id)
			}
		}
	}
	intents, err := s.intents(ctx, "")
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		if !absent[i] && live(intents[id], touched[i]) {
			absent[i] = true // being deleted: the writer uploads it again
		}
	}
	err = snapshot.ForEachID(ctx, ids, func(ctx context.Context, i int, id snapshot.ID) error {
		if absent[i] {
			return nil
		}
		_, ok, err := s.stat(ctx, s.blobKey(id))
		if err != nil {
			return fmt.Errorf("snapshot: s3: stat blob %s: %w", id.Short(), err)
		}
		absent[i] = !ok // removed by a Delete that finished meanwhile
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snapshot.Selected(ids, absent), nil
}

// refresh copies a blob onto itself. It returns the new LastModified, or
// ok=false if the blob is absent.
func (s *Store) refresh(ctx context.Context, id snapshot.ID) (time.Time, bool, error) {
	key := s.blobKey(id)
	info, err := s.client.CopyObject(ctx,
		minio.CopyDestOptions{
			Bucket: s.bucket, Object: key,
			// S3 refuses a copy onto itself that changes nothing; a
			// new metadata value makes it a change on every server.
			ReplaceMetadata: true,
			UserMetadata:    map[string]string{"Dev8-Touched": time.Now().UTC().Format(time.RFC3339Nano)},
			ContentType:     "application/octet-stream",
		},
		minio.CopySrcOptions{Bucket: s.bucket, Object: key})
	if isNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return info.LastModified, true, nil
}

// intents lists the Delete intents, for one blob (only: its hex id) or all, as
// their LastModified times by blob.
func (s *Store) intents(ctx context.Context, only string) (map[snapshot.ID][]time.Time, error) {
	prefix := s.intentPrefix()
	if only != "" {
		prefix += only + "."
	}
	out := map[snapshot.ID][]time.Time{}
	err := s.list(ctx, prefix, false, func(obj minio.ObjectInfo) error {
		name := strings.TrimPrefix(obj.Key, s.intentPrefix())
		hexID, _, _ := strings.Cut(name, ".")
		if id, err := snapshot.ParseID(hexID); err == nil {
			out[id] = append(out[id], obj.LastModified)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: s3: list delete intents: %w", err)
	}
	return out, nil
}

// live reports whether one of the intents was written less than intentTTL
// before ref (the blob's LastModified, by the same server clock).
func live(intents []time.Time, ref time.Time) bool {
	for _, t := range intents {
		if t.After(ref.Add(-intentTTL)) {
			return true
		}
	}
	return false
}

// Put implements snapshot.Store. After the upload it makes sure that no
// Delete that started before it can still remove the blob (see the package
// documentation), waiting for such a Delete to finish if one is in progress.
func (s *Store) Put(ctx context.Context, id snapshot.ID, data []byte) error {
	key := s.blobKey(id)
	var waitStart time.Time
	backoff := 20 * time.Millisecond
	upload := true
	for {
		if upload {
			if err := s.put(ctx, key, data); err != nil {
				return fmt.Errorf("snapshot: s3: put blob %s: %w", id.Short(), err)
			}
			upload = false
		}
		intents, err := s.intents(ctx, id.String())
		if err != nil {
			return err
		}
		at, ok, err := s.stat(ctx, key)
		if err != nil {
			return fmt.Errorf("snapshot: s3: stat blob %s: %w", id.Short(), err)
		}
		if !ok {
			upload = true // a Delete removed it meanwhile
			continue
		}
		if !live(intents[id], at) {
			return nil
		}
		// A Delete is in progress: wait for it to finish (it takes at
		// most deleteWindow), then check again. An intent that outlives
		// intentTTL is a crashed Delete's.
		if waitStart.IsZero() {
			waitStart = time.Now()
			if s.hookPutWaiting != nil {
				s.hookPutWaiting(id)
			}
		} else if time.Since(waitStart) > intentTTL {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Get implements snapshot.Store.
func (s *Store) Get(ctx context.Context, id snapshot.ID) ([]byte, error) {
	b, err := s.get(ctx, s.blobKey(id))
	if isNotFound(err) {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), snapshot.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: s3: get blob %s: %w", id.Short(), err)
	}
	return b, nil
}

func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

// List implements snapshot.Store.
func (s *Store) List(ctx context.Context, fn func(snapshot.BlobInfo) error) error {
	var fnErr error
	err := s.list(ctx, s.prefix+"data/", true, func(obj minio.ObjectInfo) error {
		id, ok := snapshot.ParseBlobKey(strings.TrimPrefix(obj.Key, s.prefix))
		if !ok {
			return nil // not a blob (nothing else is written here)
		}
		if err := fn(snapshot.BlobInfo{ID: id, Size: obj.Size, Touched: obj.LastModified}); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("snapshot: s3: list blobs: %w", err)
	}
	return nil
}

// Delete implements snapshot.Store with a delete intent; see the package
// documentation.
func (s *Store) Delete(ctx context.Context, id snapshot.ID, notAfter time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := s.blobKey(id)
	intent := s.intentPrefix() + id.String() + "." + randomSuffix()
	start := time.Now()
	if err := s.put(ctx, intent, nil); err != nil {
		return false, fmt.Errorf("snapshot: s3: delete blob %s: write intent: %w", id.Short(), err)
	}
	deleted, err := s.deleteWithIntent(ctx, id, key, notAfter, start)
	// Remove the intent even if ctx was cancelled meanwhile; if this
	// fails, it expires (intentTTL) and Prune removes it (RemoveTemp).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteWindow)
	defer cancel()
	if rerr := s.client.RemoveObject(cctx, s.bucket, intent, minio.RemoveObjectOptions{}); rerr != nil && err == nil {
		err = fmt.Errorf("snapshot: s3: delete blob %s: remove intent: %w", id.Short(), rerr)
	}
	return deleted, err
}

func (s *Store) deleteWithIntent(ctx context.Context, id snapshot.ID, key string, notAfter, start time.Time) (bool, error) {
	at, ok, err := s.stat(ctx, key)
	if err != nil {
		return false, fmt.Errorf("snapshot: s3: delete blob %s: %w", id.Short(), err)
	}
	if !ok || (!notAfter.IsZero() && at.After(notAfter)) {
		return false, nil // absent, or refreshed by a snapshot in progress
	}
	if s.hookDeleteChecked != nil {
		s.hookDeleteChecked(id)
	}
	left := deleteWindow - time.Since(start)
	if left <= 0 {
		return false, nil // too slow: Missing may no longer honour the intent
	}
	dctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	if err := s.client.RemoveObject(dctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return false, fmt.Errorf("snapshot: s3: delete blob %s: %w", id.Short(), err)
	}
	return true, nil
}

// RemoveTemp removes the delete intents written before olderThan: leftovers
// of Delete calls interrupted by a crash. Prune calls it.
func (s *Store) RemoveTemp(ctx context.Context, olderThan time.Time) (int, error) {
	var stale []string
	err := s.list(ctx, s.intentPrefix(), false, func(obj minio.ObjectInfo) error {
		if obj.LastModified.Before(olderThan) {
			stale = append(stale, obj.Key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot: s3: list delete intents: %w", err)
	}
	n := 0
	for _, key := range stale {
		if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return n, fmt.Errorf("snapshot: s3: remove delete intent: %w", err)
		}
		n++
	}
	return n, nil
}

// PutRecord implements snapshot.Store. Every Put is durable when it
// returns, so the blobs a record references are stored before it.
func (s *Store) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	key, err := s.recordKey(kind, name)
	if err != nil {
		return err
	}
	if err := s.put(ctx, key, data); err != nil {
		return fmt.Errorf("snapshot: s3: put %s/%s: %w", kind, name, err)
	}
	return nil
}

// GetRecord implements snapshot.Store.
func (s *Store) GetRecord(ctx context.Context, kind, name string) ([]byte, error) {
	key, err := s.recordKey(kind, name)
	if err != nil {
		return nil, err
	}
	b, err := s.get(ctx, key)
	if isNotFound(err) {
		return nil, fmt.Errorf("%s/%s: %w", kind, name, snapshot.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: s3: get %s/%s: %w", kind, name, err)
	}
	return b, nil
}

// ListRecords implements snapshot.Store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]string, error) {
	if err := snapshot.ValidRecordKind(kind); err != nil {
		return nil, err
	}
	dir := s.prefix + kind + "/"
	names := []string{}
	err := s.list(ctx, dir, false, func(obj minio.ObjectInfo) error {
		if name := strings.TrimPrefix(obj.Key, dir); snapshot.ValidRecordName(kind, name) == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: s3: list %s: %w", kind, err)
	}
	slices.Sort(names)
	return names, nil
}

// DeleteRecord implements snapshot.Store.
func (s *Store) DeleteRecord(ctx context.Context, kind, name string) error {
	key, err := s.recordKey(kind, name)
	if err != nil {
		return err
	}
	// S3 answers a delete of an absent key with success.
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("snapshot: s3: delete %s/%s: %w", kind, name, err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Package azblobstore is a snapshot.Store in an Azure Blob Storage container
// (or anything that speaks its API, such as the Azurite emulator).
//
// It is a package of its own so that only the server, which opens it, links
// the Azure SDK; the supervisor imports internal/snapshot alone.
//
// Layout, under an optional prefix inside the container:
//
//	<prefix>/data/<first 2 hex digits>/<64 hex digits>   blobs
//	<prefix>/<kind>/<name>                               records
//
// Every blob and record is one block blob written by a single Put Blob
// request, which the service applies atomically: a reader never sees a
// partial object, and an object is durable when the request returns.
//
// Missing refreshes a present blob by setting its metadata, which moves its
// Last-Modified time and changes its ETag. Delete reads the blob's properties,
// refuses if it was modified after the cutoff, and otherwise deletes it with
// If-Match on the ETag it read: a blob that Missing refreshed (or Put
// rewrote) in between no longer matches, the service answers 412 and the
// blob stays. A Missing call after the delete finds no blob and reports it
// missing, so the writer uploads it again. That makes Delete atomic with
// respect to Missing, as snapshot.Store requires.
//
// Last-Modified has a resolution of one second and comes from the service's
// clock: Delete treats a blob as touched until one second after its
// Last-Modified, and the client's and the service's clocks must agree to well
// within the prune grace period (one hour by default).
package azblobstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"dev8.dev/dev8/internal/snapshot"
)

// lastModifiedResolution is the precision of a blob's Last-Modified time.
const lastModifiedResolution = time.Second

// Store is a snapshot.Store in an Azure Blob Storage container. It is safe
// for concurrent use.
type Store struct {
	c      *container.Client
	prefix string // "" or ends in "/"
	where  string // for messages: azblob://<container>/<prefix> at <endpoint>

	// pageSize, if not zero, is the most names a list request asks for
	// (tests make it small to cover paging).
	pageSize int32

	// beforeDelete, if set, runs in Delete between reading the blob's
	// properties and the conditional delete (tests use it to refresh the
	// blob in that window).
	beforeDelete func(id snapshot.ID)
}

var _ snapshot.Store = (*Store)(nil)

// String describes where the repository is (no credentials).
func (s *Store) String() string { return s.where }

func (s *Store) blobName(id snapshot.ID) string { return s.prefix + snapshot.BlobKey(id) }

func (s *Store) recordName(kind, name string) (string, error) {
	if err := snapshot.ValidRecordName(kind, name); err != nil {
		return "", err
	}
	return s.prefix + kind + "/" + name, nil
}

// Has implements snapshot.Store.
func (s *Store) Has(ctx context.Context, id snapshot.ID) (bool, error) {
	_, err := s.c.NewBlobClient(s.blobName(id)).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap("stat blob "+id.Short(), err)
	}
	return true, nil
}

// Missing implements snapshot.Store: each present blob gets its metadata
// set, which moves its Last-Modified time to now. Up to
// snapshot.MissingConcurrency requests run at once.
func (s *Store) Missing(ctx context.Context, ids []snapshot.ID) ([]snapshot.ID, error) {
	absent := make([]bool, len(ids))
	err := snapshot.ForEachID(ctx, ids, func(ctx context.Context, i int, id snapshot.ID) error {
		ok, err := s.refresh(ctx, id)
		absent[i] = !ok
		return err
	})
	if err != nil {
		return nil, err
	}
	return snapshot.Selected(ids, absent), nil
}

// refresh touches a blob; it reports false if the blob does not exist.
func (s *Store) refresh(ctx context.Context, id snapshot.ID) (bool, error) {
	meta := map[string]*string{"touched": to.Ptr(strconv.FormatInt(time.Now().Unix(), 10))}
	_, err := s.c.NewBlobClient(s.blobName(id)).SetMetadata(ctx, meta, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap("refresh blob "+id.Short(), err)
	}
	return true, nil
}

// Put implements snapshot.Store: one Put Blob request, with the contents'
// MD5 for the service to check.
func (s *Store) Put(ctx context.Context, id snapshot.ID, data []byte) error {
	if err := s.upload(ctx, s.blobName(id), data); err != nil {
		return wrap("put blob "+id.Short(), err)
	}
	return nil
}

func (s *Store) upload(ctx context.Context, name string, data []byte) error {
	sum := md5.Sum(data)
	_, err := s.c.NewBlockBlobClient(name).Upload(ctx, nopCloser{bytes.NewReader(data)}, &blockblob.UploadOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	return err
}

// Get implements snapshot.Store.
func (s *Store) Get(ctx context.Context, id snapshot.ID) ([]byte, error) {
	b, err := s.download(ctx, s.blobName(id))
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), snapshot.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get blob "+id.Short(), err)
	}
	return b, nil
}

func (s *Store) download(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength != nil && int64(len(b)) != *resp.ContentLength {
		return nil, fmt.Errorf("read %d bytes of %d", len(b), *resp.ContentLength)
	}
	return b, nil
}

// List implements snapshot.Store: it pages through every blob under
// <prefix>data/, skipping names that are not blobs of this layout.
func (s *Store) List(ctx context.Context, fn func(snapshot.BlobInfo) error) error {
	pager := s.c.NewListBlobsFlatPager(s.listOptions(s.prefix + "data/"))
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return wrap("list blobs", err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || item.Properties == nil {
				continue
			}
			id, ok := snapshot.ParseBlobKey(strings.TrimPrefix(*item.Name, s.prefix))
			if !ok {
				continue // not a blob (nothing else is written here)
			}
			info := snapshot.BlobInfo{ID: id}
			if p := item.Properties.ContentLength; p != nil {
				info.Size = *p
			}
			if p := item.Properties.LastModified; p != nil {
				info.Touched = *p
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) listOptions(prefix string) *container.ListBlobsFlatOptions {
	o := &container.ListBlobsFlatOptions{Prefix: &prefix}
	if s.pageSize > 0 {
		o.MaxResults = &s.pageSize
	}
	return o
}

// Delete implements snapshot.Store. It reads the blob's Last-Modified time
// and ETag, refuses if the blob was modified after notAfter, and deletes it
// only if its ETag is still the one read: a refresh by Missing (or a new
// Put) in between changes the ETag and the service refuses the delete.
func (s *Store) Delete(ctx context.Context, id snapshot.ID, notAfter time.Time) (bool, error) {
	bc := s.c.NewBlobClient(s.blobName(id))
	props, err := bc.GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap("delete blob "+id.Short(), err)
	}
	if props.ETag == nil || props.LastModified == nil {
		return false, fmt.Errorf("snapshot: azblob: delete blob %s: the service returned no ETag or Last-Modified", id.Short())
	}
	if !notAfter.IsZero() && props.LastModified.Add(lastModifiedResolution).After(notAfter) {
		return false, nil // refreshed by a snapshot in progress
	}
	if s.beforeDelete != nil {
		s.beforeDelete(id)
	}
	_, err = bc.Delete(ctx, &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: props.ETag},
	}})
	switch {
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound):
		// Refreshed or rewritten since it was read (412), or deleted by
		// someone else (404): either way this call did not remove it.
		return false, nil
	case err != nil:
		return false, wrap("delete blob "+id.Short(), err)
	}
	return true, nil
}

// PutRecord implements snapshot.Store. Each Put returned only once the
// service had stored the blob durably, so the record never precedes them.
func (s *Store) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	n, err := s.recordName(kind, name)
	if err != nil {
		return err
	}
	if err := s.upload(ctx, n, data); err != nil {
		return wrap("put "+kind+"/"+name, err)
	}
	return nil
}

// GetRecord implements snapshot.Store.
func (s *Store) GetRecord(ctx context.Context, kind, name string) ([]byte, error) {
	n, err := s.recordName(kind, name)
	if err != nil {
		return nil, err
	}
	b, err := s.download(ctx, n)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, fmt.Errorf("%s/%s: %w", kind, name, snapshot.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get "+kind+"/"+name, err)
	}
	return b, nil
}

// ListRecords implements snapshot.Store.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]string, error) {
	if err := snapshot.ValidRecordKind(kind); err != nil {
		return nil, err
	}
	pre := s.prefix + kind + "/"
	pager := s.c.NewListBlobsFlatPager(s.listOptions(pre))
	names := []string{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, wrap("list "+kind, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			n := strings.TrimPrefix(*item.Name, pre)
			if snapshot.ValidRecordName(kind, n) != nil {
				continue // not written by this store
			}
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// DeleteRecord implements snapshot.Store.
func (s *Store) DeleteRecord(ctx context.Context, kind, name string) error {
	n, err := s.recordName(kind, name)
	if err != nil {
		return err
	}
	_, err = s.c.NewBlobClient(n).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return wrap("delete "+kind+"/"+name, err)
	}
	return nil
}

// nopCloser makes a bytes.Reader the io.ReadSeekCloser Upload wants.
type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// serviceError keeps the service's error (for errors.As and bloberror) but
// says it in one line: the SDK's own message spans many lines and includes
// the response body, and a network error's message includes the request URL,
// whose query may hold a SAS token.
type serviceError struct {
	op   string
	err  error
	hint string // replaces the hint for the error code
}

func (e *serviceError) Error() string {
	msg, hint := "snapshot: azblob: "+e.op+": ", e.hint
	var re *azcore.ResponseError
	var ue *url.Error
	switch {
	case errors.As(e.err, &re):
		code := re.ErrorCode
		if code == "" {
			code = "no error code"
		}
		msg += fmt.Sprintf("%s (HTTP %d)", code, re.StatusCode)
		if hint == "" {
			hint = hints[bloberror.Code(code)]
		}
	case errors.As(e.err, &ue):
		msg += ue.Err.Error() // not ue.URL, whose query may hold a SAS token
	default:
		msg += e.err.Error()
	}
	if hint != "" {
		msg += ": " + hint
	}
	return msg
}

func (e *serviceError) Unwrap() error { return e.err }

var hints = map[bloberror.Code]string{
	bloberror.ContainerNotFound:               "the container does not exist",
	bloberror.AuthenticationFailed:            "the credentials were refused (check " + EnvKey + ", " + EnvSASToken + " or " + EnvConnectionString + ")",
	bloberror.AuthorizationFailure:            "the credentials were refused or do not allow this operation",
	bloberror.AuthorizationPermissionMismatch: "the credentials do not allow this operation",
}

func wrap(op string, err error) error { return &serviceError{op: op, err: err} }

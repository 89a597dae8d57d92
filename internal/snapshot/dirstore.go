package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DirStore is a Store in a directory on the local disk:
//
//	<root>/data/<first 2 hex digits>/<64 hex digits>   blobs
//	<root>/<kind>/<name>                               records
//	<root>/tmp/                                        files being written
//
// Every file is written to tmp/, fsynced, renamed into place and its
// directory fsynced, so a crash leaves either the old state or the new one
// (plus, at worst, an orphaned file in tmp/ that Prune removes).
type DirStore struct {
	root string
}

var recordKinds = []string{KindConfig, KindSnapshot, KindLock}

// OpenDirStore opens (creating it if needed) a directory store at root.
func OpenDirStore(root string) (*DirStore, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshot: store path: %w", err)
	}
	dirs := []string{filepath.Join(abs, "tmp")}
	for _, k := range recordKinds {
		dirs = append(dirs, filepath.Join(abs, k))
	}
	for i := range 256 {
		dirs = append(dirs, filepath.Join(abs, "data", fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("snapshot: open store: %w", err)
		}
	}
	return &DirStore{root: abs}, nil
}

// Root is the store's directory.
func (s *DirStore) Root() string { return s.root }

// BlobKey is where every store keeps blob id, relative to its root (a
// directory, or a bucket's or container's prefix): data/<first two hex
// digits>/<hex>, slash-separated.
func BlobKey(id ID) string {
	h := id.String()
	return "data/" + h[:2] + "/" + h
}

// ValidRecordKind returns an error unless kind is a kind of record a Store
// keeps.
func ValidRecordKind(kind string) error {
	if !slices.Contains(recordKinds, kind) {
		return fmt.Errorf("snapshot: unknown record kind %q", kind)
	}
	return nil
}

// ValidRecordName returns an error unless kind is a kind of record and name
// a name a Store may keep a record under: not empty, no path separator,
// not starting with a dot. A store keeps the record at kind/name below its
// root.
func ValidRecordName(kind, name string) error {
	if err := ValidRecordKind(kind); err != nil {
		return err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("snapshot: invalid record name %q", name)
	}
	return nil
}

func (s *DirStore) blobPath(id ID) string {
	return filepath.Join(s.root, filepath.FromSlash(BlobKey(id)))
}

func (s *DirStore) recordPath(kind, name string) (string, error) {
	if err := ValidRecordName(kind, name); err != nil {
		return "", err
	}
	return filepath.Join(s.root, kind, name), nil
}

// Has implements Store.
func (s *DirStore) Has(ctx context.Context, id ID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, err := os.Lstat(s.blobPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Missing implements Store: present blobs get their mtime set to now.
func (s *DirStore) Missing(ctx context.Context, ids []ID) ([]ID, error) {
	var missing []ID
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		err := os.Chtimes(s.blobPath(id), now, now)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, id)
		case err != nil:
			return nil, fmt.Errorf("snapshot: refresh blob %s: %w", id.Short(), err)
		}
	}
	return missing, nil
}

// Put implements Store.
func (s *DirStore) Put(ctx context.Context, id ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.writeAtomic(s.blobPath(id), data, 0o444); err != nil {
		return fmt.Errorf("snapshot: put blob %s: %w", id.Short(), err)
	}
	return nil
}

// Get implements Store.
func (s *DirStore) Get(ctx context.Context, id ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.blobPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: get blob %s: %w", id.Short(), err)
	}
	return b, nil
}

// List implements Store.
func (s *DirStore) List(ctx context.Context, fn func(BlobInfo) error) error {
	for i := range 256 {
		dir := filepath.Join(s.root, "data", fmt.Sprintf("%02x", i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("snapshot: list blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			id, err := ParseID(e.Name())
			if err != nil {
				continue // not a blob (nothing else is written here)
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("snapshot: list blobs: %w", err)
			}
			if err := fn(BlobInfo{ID: id, Size: info.Size(), Touched: info.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements Store. The blob is first renamed into tmp/ (so Missing
// can no longer refresh it: it would report it missing and the writer would
// upload it again); its mtime is then read from the renamed file. If it was
// refreshed in between it is renamed back, otherwise removed.
func (s *DirStore) Delete(ctx context.Context, id ID, notAfter time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p := s.blobPath(id)
	trash := filepath.Join(s.root, "tmp", "del-"+id.String()+"-"+randomSuffix())
	if err := os.Rename(p, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("snapshot: delete blob %s: %w", id.Short(), err)
	}
	info, err := os.Lstat(trash)
	if err != nil {
		return false, fmt.Errorf("snapshot: delete blob %s: %w", id.Short(), err)
	}
	if !notAfter.IsZero() && info.ModTime().After(notAfter) {
		// Refreshed by a snapshot in progress: put it back. If that
		// snapshot already uploaded it again, the contents are identical.
		if err := os.Rename(trash, p); err != nil {
			return false, fmt.Errorf("snapshot: restore blob %s: %w", id.Short(), err)
		}
		return false, nil
	}
	if err := os.Remove(trash); err != nil {
		return false, fmt.Errorf("snapshot: delete blob %s: %w", id.Short(), err)
	}
	return true, nil
}

// PutRecord implements Store.
func (s *DirStore) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.recordPath(kind, name)
	if err != nil {
		return err
	}
	if err := s.writeAtomic(p, data, 0o600); err != nil {
		return fmt.Errorf("snapshot: put %s/%s: %w", kind, name, err)
	}
	return nil
}

// GetRecord implements Store.
func (s *DirStore) GetRecord(ctx context.Context, kind, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.recordPath(kind, name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s/%s: %w", kind, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: get %s/%s: %w", kind, name, err)
	}
	return b, nil
}

// ListRecords implements Store.
func (s *DirStore) ListRecords(ctx context.Context, kind string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidRecordKind(kind); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, kind))
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", kind, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil // os.ReadDir sorts by name
}

// DeleteRecord implements Store.
func (s *DirStore) DeleteRecord(ctx context.Context, kind, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.recordPath(kind, name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot: delete %s/%s: %w", kind, name, err)
	}
	return syncDir(filepath.Dir(p))
}

// RemoveTemp removes files in tmp/ last modified before olderThan: leftovers
// of writes interrupted by a crash.
func (s *DirStore) RemoveTemp(ctx context.Context, olderThan time.Time) (int, error) {
	dir := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("snapshot: list tmp: %w", err)
	}
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(olderThan) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// writeAtomic writes dst through a temporary file: contents fsynced,
// renamed into place, directory fsynced. When it returns, dst is durable.
func (s *DirStore) writeAtomic(dst string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "put-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snapshot: sync %s: %w", dir, err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

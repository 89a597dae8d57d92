package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// RestoreOptions configure a restore.
type RestoreOptions struct {
	// Path selects a file or directory inside the snapshot
	// (slash-separated, relative to the snapshot root); empty means the
	// whole snapshot. The entry is restored at the same relative path under
	// the target directory.
	Path string
	// Concurrency bounds the files written at once; zero means
	// 2×GOMAXPROCS (at least 4). Each file fetches up to 4 chunks ahead,
	// so memory use is about Concurrency × 4 × 2 MiB on average (chunks
	// are at most 4 MiB).
	Concurrency int
}

// RestoreStats describe one restore.
type RestoreStats struct {
	Files    int64         `json:"files"`
	Dirs     int64         `json:"dirs"`
	Symlinks int64         `json:"symlinks"`
	Bytes    int64         `json:"bytes"`
	Failed   int64         `json:"failed"`
	Duration time.Duration `json:"duration_ns"`
}

// RestoreError is the failure to restore one entry.
type RestoreError struct {
	Path string // relative to the snapshot root
	Err  error
}

func (e *RestoreError) Error() string { return "restore " + e.Path + ": " + e.Err.Error() }
func (e *RestoreError) Unwrap() error { return e.Err }

type restorer struct {
	repo   *Repo
	ctx    context.Context
	g      *errgroup.Group
	mu     sync.Mutex
	errs   []error
	dirs   []dirMeta // in pre-order; their metadata is applied in reverse
	files  atomic.Int64
	bytes  atomic.Int64
	dirsN  int64
	links  int64
	asRoot bool
}

type dirMeta struct {
	dst, rel string
	node     Node
}

// Restore writes a snapshot (or the entry opts.Path of it) under target,
// which is created if needed. Files get their contents, modes, mtimes and,
// when running as root, owners; symlinks and empty directories are
// recreated. Every chunk is checked against its hash. A file that cannot be
// restored (a missing or corrupt chunk) is left out, the rest of the tree is
// restored, and the returned error joins one *RestoreError per failure.
// Existing files in target are replaced; files the snapshot does not have
// are left alone.
func (r *Repo) Restore(ctx context.Context, snapshotID, target string, opts RestoreOptions) (RestoreStats, error) {
	start := time.Now()
	snap, err := r.LoadSnapshot(ctx, snapshotID)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore: %w", err)
	}
	root := snap.RootNode
	root.Type = TypeDir
	tree := snap.Tree
	root.Subtree = &tree
	sel, rel := root, ""
	if p := strings.Trim(path.Clean("/"+opts.Path), "/"); p != "" {
		rel = p
		sel, err = r.lookup(ctx, tree, p)
		if err != nil {
			return RestoreStats{}, fmt.Errorf("restore %s: %w", p, err)
		}
	}
	dst := filepath.Join(target, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return RestoreStats{}, fmt.Errorf("restore: %w", err)
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = max(4, 2*runtime.GOMAXPROCS(0))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	rs := &restorer{repo: r, ctx: gctx, g: g, asRoot: os.Geteuid() == 0}
	rs.restoreNode(dst, rel, sel)
	if err := g.Wait(); err != nil {
		return RestoreStats{}, fmt.Errorf("restore: %w", err)
	}
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		d := rs.dirs[i]
		if err := rs.applyMeta(d.dst, d.node); err != nil {
			rs.fail(d.rel, err)
		}
	}
	st := RestoreStats{Files: rs.files.Load(), Dirs: rs.dirsN, Symlinks: rs.links,
		Bytes: rs.bytes.Load(), Failed: int64(len(rs.errs)), Duration: time.Since(start)}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("restore: %w", err)
	}
	return st, errors.Join(rs.errs...)
}

// lookup finds the node at rel (slash-separated) under the tree id.
func (r *Repo) lookup(ctx context.Context, id ID, rel string) (Node, error) {
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		t, err := r.loadTree(ctx, id)
		if err != nil {
			return Node{}, err
		}
		var found *Node
		for j := range t.Nodes {
			if t.Nodes[j].FileName() == name {
				found = &t.Nodes[j]
				break
			}
		}
		if found == nil {
			return Node{}, fmt.Errorf("not in the snapshot: %w", ErrNotFound)
		}
		if i == len(parts)-1 {
			return *found, nil
		}
		if found.Type != TypeDir || found.Subtree == nil {
			return Node{}, fmt.Errorf("%s is not a directory: %w", path.Join(parts[:i+1]...), ErrNotFound)
		}
		id = *found.Subtree
	}
	panic("unreachable")
}

func (rs *restorer) fail(rel string, err error) {
	if rel == "" {
		rel = "."
	}
	rs.mu.Lock()
	rs.errs = append(rs.errs, &RestoreError{Path: rel, Err: err})
	rs.mu.Unlock()
}

// restoreNode restores n at dst. Directories are walked here; files are
// written on the worker group.
func (rs *restorer) restoreNode(dst, rel string, n Node) {
	if rs.ctx.Err() != nil {
		return
	}
	switch n.Type {
	case TypeDir:
		if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
			if err := os.Remove(dst); err != nil {
				rs.fail(rel, err)
				return
			}
		}
		if err := os.MkdirAll(dst, 0o700); err != nil {
			rs.fail(rel, err)
			return
		}
		// Its final mode is applied after its entries are written.
		if fi, err := os.Stat(dst); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
			if err := os.Chmod(dst, 0o700); err != nil {
				rs.fail(rel, err)
				return
			}
		}
		rs.dirsN++
		rs.dirs = append(rs.dirs, dirMeta{dst: dst, rel: rel, node: n})
		if n.Subtree == nil {
			rs.fail(rel, errors.New("directory without a tree"))
			return
		}
		t, err := rs.repo.loadTree(rs.ctx, *n.Subtree)
		if err != nil {
			rs.fail(rel, err)
			return
		}
		for _, c := range t.Nodes {
			name := c.FileName()
			if !validName(name) {
				rs.fail(path.Join(rel, name), errors.New("invalid name in tree"))
				continue
			}
			rs.restoreNode(filepath.Join(dst, name), path.Join(rel, name), c)
		}
	case TypeSymlink:
		if err := rs.restoreSymlink(dst, n); err != nil {
			rs.fail(rel, err)
			return
		}
		rs.links++
	case TypeFile:
		rs.g.Go(func() error {
			if err := rs.restoreFile(dst, rel, n); err != nil {
				if ctxErr := rs.ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				rs.fail(rel, err)
				return nil
			}
			rs.files.Add(1)
			return nil
		})
	default:
		rs.fail(rel, fmt.Errorf("unknown node type %q", n.Type))
	}
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func (rs *restorer) restoreSymlink(dst string, n Node) error {
	if fi, err := os.Lstat(dst); err == nil {
		if fi.IsDir() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		} else if err := os.Remove(dst); err != nil {
			return err
		}
	}
	if err := os.Symlink(n.LinkTarget(), dst); err != nil {
		return err
	}
	if rs.asRoot {
		if err := os.Lchown(dst, int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	return setSymlinkTime(dst, n.MTime)
}

// restoreFile writes a file through a temporary file in the same directory,
// verifying every chunk, and renames it into place only when complete.
func (rs *restorer) restoreFile(dst, rel string, n Node) error {
	f, err := os.CreateTemp(filepath.Dir(dst), ".dev8-restore-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var size int64
	next, stop := rs.fetchChunks(n.Content)
	defer stop()
	for i := range n.Content {
		b, err := next()
		if err != nil {
			return fmt.Errorf("chunk %d of %d: %w", i+1, len(n.Content), err)
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		size += int64(len(b))
	}
	if size != n.Size {
		return fmt.Errorf("restored %d bytes, the snapshot recorded %d: %w", size, n.Size, ErrCorrupt)
	}
	if rs.asRoot {
		if err := f.Chown(int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if err := f.Chmod(n.Mode & permBits); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	done = true
	rs.bytes.Add(size)
	return os.Chtimes(dst, n.MTime, n.MTime)
}

// prefetch is how many chunks of one file are fetched ahead of the write.
const prefetch = 4

// fetchChunks returns a function that yields the verified contents of ids in
// order (call it at most once per id), fetching up to prefetch of them
// concurrently, and a function that stops fetching; call it when done.
func (rs *restorer) fetchChunks(ids []ID) (next func() ([]byte, error), stop func()) {
	type result struct {
		b   []byte
		err error
	}
	if len(ids) <= 1 {
		i := 0
		return func() ([]byte, error) {
			i++
			return rs.repo.getBlob(rs.ctx, ids[i-1])
		}, func() {}
	}
	results := make([]chan result, len(ids))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	slots := make(chan struct{}, prefetch)
	done := make(chan struct{})
	go func() {
		for i, id := range ids {
			select {
			case slots <- struct{}{}:
			case <-done:
				return
			}
			go func() {
				b, err := rs.repo.getBlob(rs.ctx, id)
				results[i] <- result{b, err}
			}()
		}
	}()
	i := 0
	var once sync.Once
	return func() ([]byte, error) {
			r := <-results[i]
			i++
			<-slots
			return r.b, r.err
		}, func() {
			// Fetches already started finish into their buffered
			// channels; no new one starts.
			once.Do(func() { close(done) })
		}
}

func (rs *restorer) applyMeta(dst string, n Node) error {
	if rs.asRoot {
		if err := os.Lchown(dst, int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if err := os.Chmod(dst, n.Mode&permBits); err != nil {
		return err
	}
	return os.Chtimes(dst, n.MTime, n.MTime)
}

// RemoveUnlisted removes from target what snapshot snapshotID does not have,
// within the directory sub (slash-separated, relative to the snapshot root;
// empty for the whole tree), so that a restore that follows leaves an exact
// copy. Entries matching the snapshot's excludes are kept (they were never
// in it: node_modules and caches survive a restore), as are sockets, FIFOs
// and devices (never snapshotted). An entry whose type differs from the
// snapshot's (a directory where the snapshot has a file) is removed too. It
// returns how many entries it removed. If sub is a file in the snapshot,
// nothing is removed.
func (r *Repo) RemoveUnlisted(ctx context.Context, snapshotID, target, sub string) (int64, error) {
	snap, err := r.LoadSnapshot(ctx, snapshotID)
	if err != nil {
		return 0, err
	}
	ex, err := compileExcludes(snap.Excludes)
	if err != nil {
		return 0, err
	}
	sub = strings.Trim(path.Clean("/"+sub), "/")
	if sub != "" {
		n, err := r.lookup(ctx, snap.Tree, sub)
		if err != nil {
			return 0, err
		}
		if n.Type != TypeDir {
			return 0, nil
		}
	}
	var removed int64
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		nodes, err := r.ReadDir(ctx, snapshotID, rel)
		if err != nil {
			return err
		}
		want := make(map[string]*Node, len(nodes))
		for i := range nodes {
			want[nodes[i].FileName()] = &nodes[i]
		}
		dir := filepath.Join(target, filepath.FromSlash(rel))
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			childRel := path.Join(rel, name)
			t := e.Type()
			isDir := t.IsDir()
			if ex.match(childRel, isDir) {
				continue
			}
			var have string
			switch {
			case isDir:
				have = TypeDir
			case t&os.ModeSymlink != 0:
				have = TypeSymlink
			case t.IsRegular():
				have = TypeFile
			default:
				continue // sockets, FIFOs, devices
			}
			n := want[name]
			if n == nil || n.Type != have {
				if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
					return err
				}
				removed++
				continue
			}
			if isDir {
				if err := walk(childRel); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err = walk(sub)
	return removed, err
}

package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/sync/errgroup"
)

// Options configure a snapshot.
type Options struct {
	// Source names what is snapshotted (e.g. an environment ID). The
	// default parent is the latest snapshot of the same source and
	// retention is applied per source.
	Source string
	// Parent is the ID of the snapshot used to detect unchanged files.
	// Empty means the latest snapshot of Source; NoParent disables it (every
	// file is read).
	Parent   string
	NoParent bool
	// Excludes are the patterns left out (see DefaultExcludes for the
	// syntax). nil means DefaultExcludes; an empty non-nil slice excludes
	// nothing.
	Excludes []string
	Tags     []string
	// Time is recorded as the snapshot's time; zero means now.
	Time time.Time
	// Concurrency bounds the chunks being compressed and stored at once
	// (each holds up to two copies of a chunk, at most 4 MiB each); zero
	// means 4×GOMAXPROCS, between 8 and 32.
	Concurrency int

	// openHook, if set, is called with the relative path of every file
	// the snapshot opens (tests use it to prove unchanged files are not
	// read).
	openHook func(rel string)
}

// Stats describe one snapshot run.
type Stats struct {
	Files        int64 `json:"files"`
	Dirs         int64 `json:"dirs"`
	Symlinks     int64 `json:"symlinks"`
	Excluded     int64 `json:"excluded"` // entries left out by an exclude pattern
	Skipped      int64 `json:"skipped"`  // sockets, devices, FIFOs, and entries that vanished during the walk
	BytesScanned int64 `json:"bytes_scanned"`
	FilesRead    int64 `json:"files_read"` // files read (changed or new); the others reused the parent's chunks
	BytesRead    int64 `json:"bytes_read"`
	NewChunks    int64 `json:"new_chunks"`
	NewTrees     int64 `json:"new_trees"`
	// NewPlainBytes is the size of the new chunks and trees before
	// compression, NewBytes what they take in the store.
	NewPlainBytes int64         `json:"new_plain_bytes"`
	NewBytes      int64         `json:"new_bytes"`
	Duration      time.Duration `json:"duration_ns"`
}

type snapshotter struct {
	repo    *Repo
	store   Store
	ex      excluder
	hook    func(string)
	g       *errgroup.Group
	ctx     context.Context // cancelled when an upload fails
	known   sync.Map        // ID → struct{}: present (refreshed) or being uploaded in this run
	stats   Stats           // walk counters: only the walking goroutine writes them
	nChunks atomic.Int64
	nTrees  atomic.Int64
	nPlain  atomic.Int64
	nStored atomic.Int64
	chunker *chunker.Chunker
	buf     []byte
	// Blobs queued for the next upload batch (walking goroutine only).
	batch      []pendingBlob
	batchBytes int
}

// Snapshot records the directory tree at root and returns the snapshot's
// record. The record is written only after every chunk and tree is stored,
// so an interrupted snapshot (an error, a cancelled ctx, a crash) leaves no
// snapshot and does not affect earlier ones.
func (r *Repo) Snapshot(ctx context.Context, root string, opts Options) (Snapshot, error) {
	start := time.Now()
	patterns := opts.Excludes
	if patterns == nil {
		patterns = DefaultExcludes
	}
	ex, err := compileExcludes(patterns)
	if err != nil {
		return Snapshot{}, err
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	rootInfo, err := os.Stat(root)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if !rootInfo.IsDir() {
		return Snapshot{}, fmt.Errorf("snapshot: %s is not a directory", root)
	}

	lk, err := r.acquireLock(ctx, opts.Source)
	if err != nil {
		return Snapshot{}, err
	}
	defer lk.release()

	var parent *Snapshot
	switch {
	case opts.NoParent:
	case opts.Parent != "":
		p, err := r.LoadSnapshot(ctx, opts.Parent)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: parent: %w", err)
		}
		parent = &p
	default:
		p, err := r.Latest(ctx, opts.Source)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Snapshot{}, fmt.Errorf("snapshot: parent: %w", err)
		}
		if err == nil {
			parent = &p
		}
	}

	conc := opts.Concurrency
	if conc <= 0 {
		// Uploads wait on fsync more than on the CPU.
		conc = min(32, max(8, 4*runtime.GOMAXPROCS(0)))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	g.SetLimit(conc)
	s := &snapshotter{
		repo: r, store: r.store, ex: ex, hook: opts.openHook, g: g, ctx: gctx,
		chunker: chunker.NewWithBoundaries(nil, r.cfg.Polynomial, r.cfg.MinChunk, r.cfg.MaxChunk),
		buf:     make([]byte, r.cfg.MaxChunk),
	}
	s.chunker.SetAverageBits(r.cfg.AvgChunkBits)

	var parentTree *Tree
	if parent != nil {
		// A parent whose tree cannot be read only costs reading every file.
		parentTree, _ = r.loadTree(gctx, parent.Tree)
	}
	treeID, walkErr := s.saveDir(root, "", parentTree)
	if walkErr == nil {
		s.flush()
	}
	if walkErr != nil && !errors.Is(walkErr, context.Canceled) {
		// The walk failed by itself: stop the uploads.
		cancel()
		_ = g.Wait()
		return Snapshot{}, fmt.Errorf("snapshot: %w", walkErr)
	}
	// A cancelled walk may be the consequence of a failed upload, whose
	// error Wait returns.
	if err := g.Wait(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if walkErr != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", walkErr)
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}

	host, _ := os.Hostname()
	t := opts.Time
	if t.IsZero() {
		t = start
	}
	t = t.UTC()
	rn := s.node("", rootInfo)
	rn.Type = TypeDir
	rec := Snapshot{
		ID:       t.Format("20060102T150405.000000000Z") + "-" + randomSuffix()[:8],
		Time:     t,
		Source:   opts.Source,
		Host:     host,
		Root:     root,
		Tree:     treeID,
		RootNode: rn,
		Excludes: patterns,
		Tags:     opts.Tags,
	}
	if parent != nil {
		rec.Parent = parent.ID
	}
	st := s.stats
	st.Dirs++ // the root
	st.NewChunks = s.nChunks.Load()
	st.NewTrees = s.nTrees.Load()
	st.NewPlainBytes = s.nPlain.Load()
	st.NewBytes = s.nStored.Load()
	st.Duration = time.Since(start)
	rec.Stats = st
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return Snapshot{}, err
	}
	if err := r.store.PutRecord(ctx, KindSnapshot, rec.ID, b); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: write record: %w", err)
	}
	return rec, nil
}

func (s *snapshotter) node(name string, fi fs.FileInfo) Node {
	uid, gid, ino, ctime := statExtra(fi)
	n := Node{Mode: fi.Mode() & permBits, MTime: fi.ModTime().UTC(),
		UID: uid, GID: gid, Inode: ino, CTime: ctime}
	n.setName(name)
	return n
}

// unchanged reports whether a file can reuse its parent's chunk list.
func unchanged(p *Node, n *Node) bool {
	return p != nil && p.Type == TypeFile && n.CTime != -1 && p.CTime == n.CTime &&
		p.Size == n.Size && p.MTime.Equal(n.MTime) && p.Inode == n.Inode &&
		(p.Size == 0 || len(p.Content) > 0)
}

// saveDir stores the tree of the directory abs (rel from the root) and
// returns its ID.
func (s *snapshotter) saveDir(abs, rel string, parent *Tree) (ID, error) {
	if err := s.ctx.Err(); err != nil {
		return ID{}, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return ID{}, err
	}
	prev := map[string]*Node{}
	if parent != nil {
		for i := range parent.Nodes {
			prev[parent.Nodes[i].FileName()] = &parent.Nodes[i]
		}
	}
	nodes := make([]Node, 0, len(entries))
	var reused []int // indexes in nodes of files that reuse the parent's chunks
	for _, e := range entries {
		name := e.Name()
		childAbs := filepath.Join(abs, name)
		childRel := path.Join(rel, name)
		fi, err := os.Lstat(childAbs)
		if errors.Is(err, fs.ErrNotExist) {
			s.stats.Skipped++
			continue
		}
		if err != nil {
			return ID{}, err
		}
		if s.ex.match(childRel, fi.IsDir()) {
			s.stats.Excluded++
			continue
		}
		n := s.node(name, fi)
		switch {
		case fi.IsDir():
			n.Type = TypeDir
			var sub *Tree
			if p := prev[name]; p != nil && p.Type == TypeDir && p.Subtree != nil {
				sub, _ = s.repo.loadTree(s.ctx, *p.Subtree) // unreadable: read the files
			}
			id, err := s.saveDir(childAbs, childRel, sub)
			if errors.Is(err, fs.ErrNotExist) {
				// Removed during the walk (saveDir handles vanished
				// entries inside it, so this is the directory itself).
				s.stats.Skipped++
				continue
			}
			if err != nil {
				return ID{}, err
			}
			n.Subtree = &id
			s.stats.Dirs++
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(childAbs)
			if errors.Is(err, fs.ErrNotExist) {
				s.stats.Skipped++
				continue
			}
			if err != nil {
				return ID{}, err
			}
			n.Type = TypeSymlink
			n.setTarget(target)
			s.stats.Symlinks++
		case fi.Mode().IsRegular():
			n.Type = TypeFile
			n.Size = fi.Size()
			if p := prev[name]; unchanged(p, &n) {
				n.Content = p.Content
				reused = append(reused, len(nodes))
			} else if err := s.saveFile(childAbs, childRel, &n); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					s.stats.Skipped++
					continue
				}
				return ID{}, err
			}
			s.stats.Files++
			s.stats.BytesScanned += n.Size
		default:
			s.stats.Skipped++
			continue
		}
		nodes = append(nodes, n)
	}
	nodes, err = s.confirmReused(abs, rel, nodes, reused)
	if err != nil {
		return ID{}, err
	}
	b, id, err := encodeTree(&Tree{Nodes: nodes})
	if err != nil {
		return ID{}, err
	}
	if len(b) > maxBlobSize {
		return ID{}, fmt.Errorf("directory %s: %d entries make a tree of %d bytes, over the %d limit", dirName(rel), len(nodes), len(b), maxBlobSize)
	}
	s.storeBlob(id, b, true)
	return id, nil
}

// confirmReused asks the store, in one batch, for the chunks that unchanged
// files reuse (which also refreshes them against a concurrent prune). A file
// with a missing chunk is read again (and left out if it is gone). It
// returns the directory's nodes.
func (s *snapshotter) confirmReused(abs, rel string, nodes []Node, reused []int) ([]Node, error) {
	if len(reused) == 0 {
		return nodes, nil
	}
	var ask []ID
	seen := map[ID]bool{}
	for _, i := range reused {
		for _, id := range nodes[i].Content {
			if seen[id] {
				continue
			}
			seen[id] = true
			if _, ok := s.known.Load(id); !ok {
				ask = append(ask, id)
			}
		}
	}
	if len(ask) == 0 {
		return nodes, nil
	}
	missing, err := s.store.Missing(s.ctx, ask)
	if err != nil {
		return nil, err
	}
	gone := map[ID]bool{}
	for _, id := range missing {
		gone[id] = true
	}
	for _, id := range ask {
		if !gone[id] {
			s.known.Store(id, struct{}{})
		}
	}
	if len(gone) == 0 {
		return nodes, nil
	}
	vanished := map[int]bool{}
	for _, i := range reused {
		n := &nodes[i]
		lost := false
		for _, id := range n.Content {
			lost = lost || gone[id]
		}
		if !lost {
			continue
		}
		s.stats.BytesScanned -= n.Size
		n.Content = nil
		err := s.saveFile(filepath.Join(abs, n.FileName()), path.Join(rel, n.FileName()), n)
		if errors.Is(err, fs.ErrNotExist) {
			vanished[i] = true
			s.stats.Files--
			s.stats.Skipped++
			continue
		}
		if err != nil {
			return nil, err
		}
		s.stats.BytesScanned += n.Size
	}
	if len(vanished) == 0 {
		return nodes, nil
	}
	kept := nodes[:0]
	for i, n := range nodes {
		if !vanished[i] {
			kept = append(kept, n)
		}
	}
	return kept, nil
}

// saveFile reads and chunks a file, filling n.Content and n.Size.
func (s *snapshotter) saveFile(abs, rel string, n *Node) error {
	if s.hook != nil {
		s.hook(rel)
	}
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	s.stats.FilesRead++
	cfg := s.repo.cfg
	s.chunker.ResetWithBoundaries(f, cfg.Polynomial, cfg.MinChunk, cfg.MaxChunk)
	s.chunker.SetAverageBits(cfg.AvgChunkBits)
	var size int64
	var content []ID
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		c, err := s.chunker.Next(s.buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		data := make([]byte, len(c.Data))
		copy(data, c.Data)
		id := Hash(data)
		content = append(content, id)
		size += int64(len(data))
		s.storeBlob(id, data, false)
	}
	s.stats.BytesRead += size
	n.Content = content
	// The file changed while it was read: keep what was read, and make
	// the next snapshot read it again.
	if after, err := f.Stat(); err != nil || after.Size() != size || !after.ModTime().Equal(n.MTime) || size != n.Size {
		n.CTime = -1
	}
	n.Size = size
	return nil
}

// Upload batches: new blobs are sent to the store in groups, one
// Store.Missing call per group, so that a remote store is asked once per
// batch which blobs it lacks.
const (
	batchBlobs = 64
	batchBytes = 8 << 20
)

type pendingBlob struct {
	id    ID
	plain []byte
	tree  bool
}

// storeBlob queues a blob for storing unless it is known to be stored or
// queued in this run.
func (s *snapshotter) storeBlob(id ID, plain []byte, tree bool) {
	if _, loaded := s.known.LoadOrStore(id, struct{}{}); loaded {
		return
	}
	s.batch = append(s.batch, pendingBlob{id: id, plain: plain, tree: tree})
	s.batchBytes += len(plain)
	if len(s.batch) >= batchBlobs || s.batchBytes >= batchBytes {
		s.flush()
	}
}

// flush sends the queued blobs on the upload group: the store is asked which
// of them it lacks (which refreshes the ones it has) and those are
// compressed and written.
func (s *snapshotter) flush() {
	if len(s.batch) == 0 {
		return
	}
	batch := s.batch
	s.batch, s.batchBytes = nil, 0
	s.g.Go(func() error {
		ids := make([]ID, len(batch))
		for i, b := range batch {
			ids[i] = b.id
		}
		missing, err := s.store.Missing(s.ctx, ids)
		if err != nil {
			return err
		}
		lacks := make(map[ID]bool, len(missing))
		for _, id := range missing {
			lacks[id] = true
		}
		for _, b := range batch {
			if !lacks[b.id] {
				continue
			}
			enc := encodeBlob(b.plain)
			if err := s.store.Put(s.ctx, b.id, enc); err != nil {
				return err
			}
			if b.tree {
				s.nTrees.Add(1)
			} else {
				s.nChunks.Add(1)
			}
			s.nPlain.Add(int64(len(b.plain)))
			s.nStored.Add(int64(len(enc)))
		}
		return nil
	})
}

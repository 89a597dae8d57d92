package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Problem is one missing or corrupt blob and what it breaks.
type Problem struct {
	ID      ID     `json:"id"`
	Kind    string `json:"kind"` // "chunk" or "tree"
	Missing bool   `json:"missing"`
	Err     string `json:"error"`
	// Snapshots are the IDs of the snapshots that reference the blob.
	Snapshots []string `json:"snapshots"`
	// Paths are up to maxProblemPaths of the entries it belongs to.
	Paths []string `json:"paths"`
}

const maxProblemPaths = 10

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Snapshots int   `json:"snapshots"`
	Trees     int   `json:"trees"`
	Chunks    int   `json:"chunks"`
	Bytes     int64 `json:"bytes"` // plain bytes of the chunks checked
	// BadRecords are snapshot records that cannot be read or decoded.
	BadRecords []string  `json:"bad_records,omitempty"`
	Problems   []Problem `json:"problems,omitempty"`
}

// OK reports whether the repository is intact.
func (v *VerifyReport) OK() bool { return len(v.BadRecords) == 0 && len(v.Problems) == 0 }

// Verify checks the whole repository: every snapshot record decodes, every
// tree it references decodes and hashes right, and every chunk those trees
// reference exists and hashes right (every chunk is read). It returns an
// error only when the check itself cannot run (the store fails); damage is in
// the report.
func (r *Repo) Verify(ctx context.Context) (*VerifyReport, error) {
	names, err := r.store.ListRecords(ctx, KindSnapshot)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rep := &VerifyReport{}
	var snaps []Snapshot
	for _, n := range names {
		b, err := r.store.GetRecord(ctx, KindSnapshot, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		var s Snapshot
		if err := json.Unmarshal(b, &s); err != nil || s.ID != n {
			rep.BadRecords = append(rep.BadRecords, n)
			continue
		}
		snaps = append(snaps, s)
	}
	rep.Snapshots = len(snaps)

	w := &treeWalker{repo: r, trees: map[ID]*Tree{}, bad: map[ID]*Problem{}}
	chunks := map[ID]bool{}
	for _, s := range snaps {
		err := w.walk(ctx, s.Tree, "", func(rel string, n *Node) {
			for _, id := range n.Content {
				chunks[id] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	rep.Trees = len(w.trees) + len(w.bad)
	rep.Chunks = len(chunks)

	// Read every chunk once, in parallel.
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(4, 2*runtime.GOMAXPROCS(0)))
	for id := range chunks {
		g.Go(func() error {
			stored, err := r.store.Get(gctx, id)
			var plain []byte
			if err == nil {
				plain, err = decodeBlob(id, stored)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				rep.Bytes += int64(len(plain))
			case errors.Is(err, ErrNotFound):
				w.bad[id] = &Problem{ID: id, Kind: "chunk", Missing: true, Err: err.Error()}
			case errors.Is(err, ErrCorrupt):
				w.bad[id] = &Problem{ID: id, Kind: "chunk", Err: err.Error()}
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if len(w.bad) == 0 {
		return rep, nil
	}

	// Attribute every problem to the snapshots and paths that use it.
	for _, s := range snaps {
		affected := map[ID]bool{}
		note := func(id ID, rel string) {
			p := w.bad[id]
			affected[id] = true
			if len(p.Paths) < maxProblemPaths && !slices.Contains(p.Paths, rel) {
				p.Paths = append(p.Paths, rel)
			}
		}
		err := w.walkWith(ctx, s.Tree, "", func(rel string, n *Node) {
			for _, id := range n.Content {
				if w.bad[id] != nil {
					note(id, rel)
				}
			}
		}, func(id ID, rel string) { note(id, rel) })
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for id := range affected {
			w.bad[id].Snapshots = append(w.bad[id].Snapshots, s.ID)
		}
	}
	for _, p := range w.bad {
		slices.Sort(p.Paths)
		rep.Problems = append(rep.Problems, *p)
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int { return compareStrings(a.ID.String(), b.ID.String()) })
	return rep, nil
}

// treeWalker walks snapshot trees, decoding each tree once and recording
// trees that are missing or corrupt.
type treeWalker struct {
	repo  *Repo
	trees map[ID]*Tree
	bad   map[ID]*Problem
}

func (w *treeWalker) walk(ctx context.Context, id ID, rel string, fn func(rel string, n *Node)) error {
	return w.walkWith(ctx, id, rel, fn, nil)
}

// walkWith calls fn for every node under the tree id; badTree is called for
// a tree that cannot be read (its entries are not walked). It returns an
// error only when the store itself fails.
func (w *treeWalker) walkWith(ctx context.Context, id ID, rel string, fn func(rel string, n *Node), badTree func(id ID, rel string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := w.trees[id]
	if t == nil {
		if w.bad[id] != nil {
			if badTree != nil {
				badTree(id, dirName(rel))
			}
			return nil
		}
		var err error
		t, err = w.repo.loadTree(ctx, id)
		switch {
		case err == nil:
			w.trees[id] = t
		case errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt):
			w.bad[id] = &Problem{ID: id, Kind: "tree", Missing: errors.Is(err, ErrNotFound), Err: err.Error()}
			if badTree != nil {
				badTree(id, dirName(rel))
			}
			return nil
		default:
			return err
		}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		childRel := path.Join(rel, n.FileName())
		fn(childRel, n)
		if n.Type == TypeDir && n.Subtree != nil {
			if err := w.walkWith(ctx, *n.Subtree, childRel, fn, badTree); err != nil {
				return err
			}
		}
	}
	return nil
}

func dirName(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

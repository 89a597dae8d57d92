package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Retention says which snapshots Prune keeps, per Source.
type Retention struct {
	// KeepLast keeps the newest KeepLast snapshots (at least 1).
	KeepLast int `json:"keep_last"`
	// KeepDaily keeps the newest snapshot of each of the last KeepDaily
	// calendar days (UTC), today included.
	KeepDaily int `json:"keep_daily"`
}

// DefaultRetention keeps the last 10 snapshots and one a day for 30 days.
var DefaultRetention = Retention{KeepLast: 10, KeepDaily: 30}

// Retain splits snaps into the ones ret keeps and the ones it forgets at
// time now. Each Source is considered on its own; snapshots dated after now
// count as today.
func Retain(snaps []Snapshot, now time.Time, ret Retention) (keep, forget []Snapshot) {
	bySource := map[string][]Snapshot{}
	var sources []string
	for _, s := range snaps {
		if _, ok := bySource[s.Source]; !ok {
			sources = append(sources, s.Source)
		}
		bySource[s.Source] = append(bySource[s.Source], s)
	}
	today := day(now)
	for _, src := range sources {
		list := bySource[src]
		slices.SortFunc(list, func(a, b Snapshot) int { // newest first
			if c := b.Time.Compare(a.Time); c != 0 {
				return c
			}
			return compareStrings(b.ID, a.ID)
		})
		seenDays := map[time.Time]bool{}
		for i, s := range list {
			d := day(s.Time)
			if d.After(today) {
				d = today
			}
			daysAgo := int(today.Sub(d).Hours() / 24)
			daily := daysAgo < ret.KeepDaily && !seenDays[d]
			if daily {
				seenDays[d] = true
			}
			if i < ret.KeepLast || daily {
				keep = append(keep, s)
			} else {
				forget = append(forget, s)
			}
		}
	}
	return keep, forget
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// DefaultGrace is how long an unreferenced blob is kept after it was last
// written or refreshed; MinGrace is the least Prune accepts (file times are
// coarser than the clock).
const (
	DefaultGrace = time.Hour
	MinGrace     = time.Second
)

// PruneOptions configure Prune.
type PruneOptions struct {
	Retention Retention
	// Grace: zero means DefaultGrace; less than MinGrace means MinGrace.
	Grace time.Duration
	// DryRun reports what would be forgotten and deleted, and changes
	// nothing.
	DryRun bool
}

// PruneReport is the result of Prune.
type PruneReport struct {
	Kept      []string `json:"kept"`
	Forgotten []string `json:"forgotten"`
	// Cutoff: unreferenced blobs touched before it were deleted.
	Cutoff       time.Time `json:"cutoff"`
	Referenced   int       `json:"referenced"`    // blobs the kept snapshots use
	BlobsDeleted int       `json:"blobs_deleted"` // (or would be, in a dry run)
	BytesDeleted int64     `json:"bytes_deleted"`
	BlobsYoung   int       `json:"blobs_young"` // unreferenced, but touched after the cutoff
	StaleLocks   int       `json:"stale_locks"`
	TempRemoved  int       `json:"temp_removed"`
}

// Prune forgets the snapshots the retention policy does not keep and
// deletes the blobs no kept snapshot uses. It is safe while snapshots are
// being written; see "Pruning" in the package documentation for the rule.
// If a kept snapshot's tree cannot be read, nothing is deleted (the blobs it
// references are unknown) and the error says which snapshot.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	if opts.Retention.KeepLast < 1 || opts.Retention.KeepDaily < 0 {
		return nil, errors.New("prune: retention must keep at least the last snapshot")
	}
	grace := opts.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	grace = max(grace, MinGrace)

	// Locks first: a snapshot that starts after this point touches every
	// blob it uses after now, so now-grace protects them.
	now := time.Now()
	live, stale, err := r.liveLocks(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	cutoff := now.Add(-grace)
	for _, l := range live {
		if c := l.Created.Add(-grace); c.Before(cutoff) {
			cutoff = c
		}
	}
	rep := &PruneReport{Cutoff: cutoff.UTC()}

	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	keep, forget := Retain(snaps, now, opts.Retention)
	for _, s := range keep {
		rep.Kept = append(rep.Kept, s.ID)
	}
	for _, s := range forget {
		rep.Forgotten = append(rep.Forgotten, s.ID)
	}
	slices.Sort(rep.Kept)
	slices.Sort(rep.Forgotten)

	// Everything the kept snapshots reference.
	ref := map[ID]bool{}
	damaged := ""
	w := &treeWalker{repo: r, trees: map[ID]*Tree{}, bad: map[ID]*Problem{}}
	for _, s := range keep {
		ref[s.Tree] = true
		err := w.walkWith(ctx, s.Tree, "", func(_ string, n *Node) {
			for _, id := range n.Content {
				ref[id] = true
			}
			if n.Subtree != nil {
				ref[*n.Subtree] = true
			}
		}, func(id ID, rel string) {
			if damaged == "" {
				damaged = fmt.Sprintf("snapshot %s: the tree of %s (%s) is damaged: %s", s.ID, rel, id.Short(), w.bad[id].Err)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		if damaged != "" {
			return nil, fmt.Errorf("prune: %s; nothing was deleted, run verify", damaged)
		}
	}
	rep.Referenced = len(ref)

	if !opts.DryRun {
		for _, s := range forget {
			if err := r.Forget(ctx, s.ID); err != nil {
				return nil, fmt.Errorf("prune: forget %s: %w", s.ID, err)
			}
		}
	}

	var candidates []BlobInfo
	err = r.store.List(ctx, func(b BlobInfo) error {
		switch {
		case ref[b.ID]:
		case b.Touched.Before(cutoff):
			candidates = append(candidates, b)
		default:
			rep.BlobsYoung++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	for _, b := range candidates {
		if opts.DryRun {
			rep.BlobsDeleted++
			rep.BytesDeleted += b.Size
			continue
		}
		deleted, err := r.store.Delete(ctx, b.ID, cutoff)
		if err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		if deleted {
			rep.BlobsDeleted++
			rep.BytesDeleted += b.Size
		} else {
			rep.BlobsYoung++
		}
	}
	if opts.DryRun {
		rep.StaleLocks = len(stale)
		return rep, nil
	}
	for _, n := range stale {
		if err := r.store.DeleteRecord(ctx, KindLock, n); err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		rep.StaleLocks++
	}
	if tc, ok := r.store.(tempCleaner); ok {
		n, err := tc.RemoveTemp(ctx, now.Add(-grace))
		if err != nil {
			return nil, fmt.Errorf("prune: %w", err)
		}
		rep.TempRemoved = n
	}
	return rep, nil
}

package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/restic/chunker"
)

const repoVersion = 1

// Chunk size bounds used for new repositories (the average is about 1 MiB).
const (
	minChunk     = 256 << 10
	maxChunk     = 4 << 20
	avgChunkBits = 20
)

// Config is the repository's fixed parameters, stored once as the record
// config/config when the repository is created. The chunker polynomial must
// never change: the same bytes must cut into the same chunks in every
// snapshot for deduplication to work.
type Config struct {
	Version      int         `json:"version"`
	Created      time.Time   `json:"created"`
	Polynomial   chunker.Pol `json:"polynomial"`
	MinChunk     uint        `json:"min_chunk"`
	MaxChunk     uint        `json:"max_chunk"`
	AvgChunkBits int         `json:"avg_chunk_bits"`
}

// Repo is a snapshot repository on a Store.
type Repo struct {
	store Store
	cfg   Config
	// How often a snapshot in progress rewrites its lock, and after how
	// long without a rewrite Prune considers a lock left by a crash.
	lockRefresh time.Duration
	lockStale   time.Duration
}

// Lock timing: a snapshot in progress rewrites its lock every lockRefresh;
// Prune treats a lock not rewritten for lockStale as left by a crash.
const (
	defaultLockRefresh = 5 * time.Minute
	defaultLockStale   = 30 * time.Minute
)

// Open opens the repository in store, creating it (with a new random chunker
// polynomial) if the store holds none.
func Open(ctx context.Context, store Store) (*Repo, error) {
	r := &Repo{store: store, lockRefresh: defaultLockRefresh, lockStale: defaultLockStale}
	b, err := store.GetRecord(ctx, KindConfig, "config")
	switch {
	case errors.Is(err, ErrNotFound):
		pol, err := chunker.RandomPolynomial()
		if err != nil {
			return nil, fmt.Errorf("snapshot: new polynomial: %w", err)
		}
		r.cfg = Config{Version: repoVersion, Created: time.Now().UTC(), Polynomial: pol,
			MinChunk: minChunk, MaxChunk: maxChunk, AvgChunkBits: avgChunkBits}
		b, err := json.MarshalIndent(r.cfg, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := store.PutRecord(ctx, KindConfig, "config", b); err != nil {
			return nil, err
		}
		return r, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &r.cfg); err != nil {
		return nil, fmt.Errorf("snapshot: repository config: %w", err)
	}
	if r.cfg.Version != repoVersion {
		return nil, fmt.Errorf("snapshot: repository version %d, this build reads %d", r.cfg.Version, repoVersion)
	}
	if !r.cfg.Polynomial.Irreducible() || r.cfg.MinChunk == 0 || r.cfg.MaxChunk < r.cfg.MinChunk || r.cfg.MaxChunk > maxBlobSize {
		return nil, errors.New("snapshot: repository config: invalid chunker parameters")
	}
	return r, nil
}

// Config returns the repository's parameters.
func (r *Repo) Config() Config { return r.cfg }

// Store returns the repository's store.
func (r *Repo) Store() Store { return r.store }

// getBlob fetches a blob and returns its verified plain contents.
func (r *Repo) getBlob(ctx context.Context, id ID) ([]byte, error) {
	stored, err := r.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeBlob(id, stored)
}

// Snapshot is the record of one finished snapshot, stored as the record
// snapshots/<ID> (JSON).
type Snapshot struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Source string    `json:"source,omitempty"` // what was snapshotted (e.g. an environment ID); retention is per source
	Host   string    `json:"host,omitempty"`
	Root   string    `json:"root"`             // the directory that was snapshotted
	Parent string    `json:"parent,omitempty"` // the snapshot used for change detection
	Tree   ID        `json:"tree"`             // the root directory's tree blob
	// RootNode is the root directory's own metadata (mode, mtime, owner).
	RootNode Node     `json:"root_node"`
	Excludes []string `json:"excludes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Stats    Stats    `json:"stats"`
}

// Snapshots returns every finished snapshot, oldest first. A record that
// cannot be decoded is an error (Verify reports such records).
func (r *Repo) Snapshots(ctx context.Context) ([]Snapshot, error) {
	return r.snapshots(ctx, true)
}

// snapshots lists the snapshot records; with strict false, records that do
// not decode are skipped.
func (r *Repo) snapshots(ctx context.Context, strict bool) ([]Snapshot, error) {
	names, err := r.store.ListRecords(ctx, KindSnapshot)
	if err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(names))
	for _, n := range names {
		s, err := r.LoadSnapshot(ctx, n)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // forgotten meanwhile
		case errors.Is(err, errBadRecord) && !strict:
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out, nil
}

// LoadSnapshot returns one snapshot's record.
func (r *Repo) LoadSnapshot(ctx context.Context, id string) (Snapshot, error) {
	var s Snapshot
	b, err := r.store.GetRecord(ctx, KindSnapshot, id)
	if err != nil {
		return s, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("snapshot %s: %w: %v", id, errBadRecord, err)
	}
	return s, nil
}

var errBadRecord = errors.New("record does not decode")

// Latest returns the newest snapshot of source, or an error wrapping
// ErrNotFound. Records that do not decode are ignored.
func (r *Repo) Latest(ctx context.Context, source string) (Snapshot, error) {
	all, err := r.snapshots(ctx, false)
	if err != nil {
		return Snapshot{}, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Source == source {
			return all[i], nil
		}
	}
	return Snapshot{}, fmt.Errorf("no snapshot of %q: %w", source, ErrNotFound)
}

// Forget deletes a snapshot's record. Its chunks stay until Prune.
func (r *Repo) Forget(ctx context.Context, id string) error {
	return r.store.DeleteRecord(ctx, KindSnapshot, id)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lock is the record locks/<name> of a snapshot in progress.
type lock struct {
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid"`
	Source    string    `json:"source,omitempty"`
}

// heldLock is a lock this process holds; release stops refreshing it and
// removes it.
type heldLock struct {
	release func()
}

// acquireLock writes a lock record and keeps refreshing it until released.
func (r *Repo) acquireLock(ctx context.Context, source string) (*heldLock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := lock{Created: now, Refreshed: now, Host: host, PID: os.Getpid(), Source: source}
	name := now.Format("20060102T150405.000000000Z") + "-" + randomSuffix()
	write := func(ctx context.Context) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return r.store.PutRecord(ctx, KindLock, name, b)
	}
	if err := write(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: lock: %w", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.lockRefresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				l.Refreshed = time.Now().UTC()
				// A failed refresh is retried on the next tick; the
				// lock only goes stale after lockStale.
				_ = write(context.WithoutCancel(ctx))
			}
		}
	})
	var once sync.Once
	return &heldLock{release: func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			_ = r.store.DeleteRecord(context.WithoutCancel(ctx), KindLock, name)
		})
	}}, nil
}

// liveLocks returns the locks not older than lockStale and the names of the
// stale ones.
func (r *Repo) liveLocks(ctx context.Context, now time.Time) (live []lock, stale []string, err error) {
	names, err := r.store.ListRecords(ctx, KindLock)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		b, err := r.store.GetRecord(ctx, KindLock, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var l lock
		if err := json.Unmarshal(b, &l); err != nil {
			// Unreadable: treat as live but from the beginning of
			// time until it goes stale by its file age is unknowable;
			// be safe and keep everything.
			return nil, nil, fmt.Errorf("snapshot: lock %s unreadable: %w", n, err)
		}
		if now.Sub(l.Refreshed) > r.lockStale {
			stale = append(stale, n)
			continue
		}
		live = append(live, l)
	}
	return live, stale, nil
}

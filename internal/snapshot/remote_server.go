package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Access is what a job may do in the server's repository. Blobs are
// content-addressed: a client can read only blobs whose hash it knows (from
// its own files or from a snapshot it may read), and every blob it writes is
// checked against its name. Records are guarded:
//   - config: read only;
//   - snapshots: ReadSnapshots are readable (and listed); with AllowCreate,
//     one new snapshot record of the job's Source may be created, never
//     replaced or deleted;
//   - locks: only the locks the job itself created.
type Access struct {
	ReadSnapshots []string
	AllowCreate   bool
}

// ServeJob sends job on conn and serves store to the supervisor at the other
// end until it reports the result. For a snapshot job, the result's snapshot
// must be the record the job created. ServeJob closes conn; ctx ending
// closes it early.
func ServeJob(ctx context.Context, conn io.ReadWriteCloser, store Store, job Job, access Access) (JobResult, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	s := &jobServer{store: store, source: job.Source, readable: map[string]bool{}, created: map[string]bool{}, locks: map[string]bool{}, allowCreate: access.AllowCreate}
	for _, id := range access.ReadSnapshots {
		s.readable[id] = true
	}
	// Runs last, once no handler is left: a job that ended without removing
	// its locks (the supervisor was killed, the stream broke) will never
	// refresh them again, and a dead lock only holds back pruning.
	defer s.removeLocks(ctx)
	if err := writeFrame(conn, frame{Op: opJob, Job: &job}); err != nil {
		return JobResult{}, fmt.Errorf("snapshot job: send: %w", err)
	}
	var wmu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentRequests)
	defer wg.Wait()
	defer conn.Close() // before the wait: a handler blocked writing returns
	for {
		f, err := readFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return JobResult{}, fmt.Errorf("snapshot job: the workspace stopped answering: %w", err)
		}
		switch f.Op {
		case opDone:
			wg.Wait()
			if f.Result == nil {
				return JobResult{}, errors.New("snapshot job: empty result")
			}
			res := *f.Result
			if job.Op == JobSnapshot && res.Error == "" {
				s.mu.Lock()
				ok := res.Snapshot != nil && s.created[res.Snapshot.ID]
				s.mu.Unlock()
				if !ok {
					return JobResult{}, errors.New("snapshot job: the result names a snapshot the job did not write")
				}
				// The server's copy of the record is authoritative.
				snap, err := (&Repo{store: store}).LoadSnapshot(ctx, res.Snapshot.ID)
				if err != nil {
					return JobResult{}, err
				}
				res.Snapshot = &snap
			}
			return res, nil
		case opJob, opReply:
			return JobResult{}, fmt.Errorf("snapshot job: unexpected %q frame", f.Op)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return JobResult{}, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rep := s.handle(ctx, f)
			rep.Op, rep.Seq = opReply, f.Seq
			wmu.Lock()
			err := writeFrame(conn, rep)
			wmu.Unlock()
			if err != nil {
				_ = conn.Close()
			}
		}()
	}
}

// removeLocks deletes the lock records the job created and did not remove.
func (s *jobServer) removeLocks(ctx context.Context) {
	s.mu.Lock()
	names := make([]string, 0, len(s.locks))
	for n := range s.locks {
		names = append(names, n)
	}
	s.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, n := range names {
		// Best effort: a lock left behind goes stale and Prune removes it.
		_ = s.store.DeleteRecord(ctx, KindLock, n)
	}
}

type jobServer struct {
	store       Store
	source      string // the job's Source: the only one its snapshot may have
	allowCreate bool
	mu          sync.Mutex
	readable    map[string]bool // snapshot records the job may read
	created     map[string]bool // snapshot records the job created
	locks       map[string]bool // lock records the job created
}

var errDenied = errors.New("not allowed for this workspace")

func validRecordName(name string) bool {
	return name != "" && len(name) <= 128 && !strings.ContainsAny(name, `/\`) && name != "." && name != ".."
}

func (s *jobServer) handle(ctx context.Context, f frame) (rep frame) {
	fail := func(err error) frame {
		return frame{Err: err.Error(), NotFound: errors.Is(err, ErrNotFound)}
	}
	switch f.Op {
	case opHas, opGet, opPut:
		id, err := ParseID(f.ID)
		if err != nil {
			return fail(err)
		}
		switch f.Op {
		case opHas:
			ok, err := s.store.Has(ctx, id)
			if err != nil {
				return fail(err)
			}
			return frame{Bool: ok}
		case opGet:
			b, err := s.store.Get(ctx, id)
			if err != nil {
				return fail(err)
			}
			return frame{payload: b}
		default:
			// A blob's name must be its hash: decode and check it.
			if _, err := decodeBlob(id, f.payload); err != nil {
				return fail(err)
			}
			if err := s.store.Put(ctx, id, f.payload); err != nil {
				return fail(err)
			}
			return frame{}
		}
	case opMissing:
		if len(f.IDs) > maxMissingBatch {
			return fail(fmt.Errorf("more than %d ids in one request", maxMissingBatch))
		}
		ids := make([]ID, len(f.IDs))
		for i, s := range f.IDs {
			id, err := ParseID(s)
			if err != nil {
				return fail(err)
			}
			ids[i] = id
		}
		missing, err := s.store.Missing(ctx, ids)
		if err != nil {
			return fail(err)
		}
		out := make([]string, len(missing))
		for i, id := range missing {
			out[i] = id.String()
		}
		return frame{IDs: out}
	case opGetRecord:
		if !s.mayRead(f.Kind, f.Name) {
			return fail(fmt.Errorf("%s/%s: %w", f.Kind, f.Name, ErrNotFound))
		}
		b, err := s.store.GetRecord(ctx, f.Kind, f.Name)
		if err != nil {
			return fail(err)
		}
		return frame{payload: b}
	case opListRecords:
		names, err := s.store.ListRecords(ctx, f.Kind)
		if err != nil {
			return fail(err)
		}
		out := []string{}
		for _, n := range names {
			if s.mayRead(f.Kind, n) {
				out = append(out, n)
			}
		}
		return frame{Names: out}
	case opPutRecord:
		if !validRecordName(f.Name) || len(f.payload) > maxRecordSize {
			return fail(errors.New("invalid record"))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch f.Kind {
		case KindSnapshot:
			// One snapshot per job, of the job's source: retention is
			// per source, so a record claiming another would count
			// against that environment's snapshots.
			if !s.allowCreate || len(s.created) > 0 {
				return fail(errDenied)
			}
			var snap Snapshot
			if err := json.Unmarshal(f.payload, &snap); err != nil || snap.ID != f.Name || snap.Source != s.source {
				return fail(errors.New("invalid snapshot record"))
			}
		case KindLock:
			if !s.locks[f.Name] && len(s.locks) >= 4 {
				return fail(errDenied)
			}
		default:
			return fail(errDenied)
		}
		if !s.locks[f.Name] {
			// Create only: never replace someone else's record.
			if _, err := s.store.GetRecord(ctx, f.Kind, f.Name); err == nil {
				return fail(errDenied)
			} else if !errors.Is(err, ErrNotFound) {
				return fail(err)
			}
		}
		if err := s.store.PutRecord(ctx, f.Kind, f.Name, f.payload); err != nil {
			return fail(err)
		}
		if f.Kind == KindLock {
			s.locks[f.Name] = true
		} else {
			s.created[f.Name] = true
			s.readable[f.Name] = true
		}
		return frame{}
	case opDeleteRecord:
		s.mu.Lock()
		owned := f.Kind == KindLock && s.locks[f.Name]
		s.mu.Unlock()
		if !owned {
			return fail(errDenied)
		}
		if err := s.store.DeleteRecord(ctx, f.Kind, f.Name); err != nil {
			return fail(err)
		}
		s.mu.Lock()
		delete(s.locks, f.Name)
		s.mu.Unlock()
		return frame{}
	}
	return fail(fmt.Errorf("unknown request %q", f.Op))
}

func (s *jobServer) mayRead(kind, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case KindConfig:
		return name == "config"
	case KindSnapshot:
		return s.readable[name]
	case KindLock:
		return s.locks[name]
	}
	return false
}

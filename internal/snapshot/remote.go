package snapshot

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// # Jobs over a stream
//
// A workspace's supervisor snapshots and restores its own files, but it never
// holds the repository's location or credentials. The server opens a stream
// to the supervisor (through the workspace tunnel), sends a [Job], and then
// serves the repository on that same stream: the supervisor's [Repo] runs on
// a [RemoteStore] whose every call is a request the server answers from its
// own Store, under the job's [Access] rules. The supervisor ends the job
// with a [JobResult].
//
// A stream carries frames: a 4-byte big-endian length and a JSON header, then
// a 4-byte length and a payload (a blob or record; empty for most frames).
// Requests carry a sequence number and may be in flight concurrently; the
// server answers each with a reply frame of the same number.

// Job operations.
const (
	JobSnapshot = "snapshot" // snapshot the workspace directory
	JobRestore  = "restore"  // restore a snapshot (or a path of it) into the workspace directory
)

// Job is what the server asks a supervisor to do.
type Job struct {
	Op string `json:"op"`
	// JobSnapshot: Source names the environment; Parent is the snapshot
	// used for change detection (empty: none). Excludes nil means
	// DefaultExcludes.
	Source   string   `json:"source,omitempty"`
	Parent   string   `json:"parent,omitempty"`
	Excludes []string `json:"excludes,omitempty"`
	// JobRestore: the snapshot, optionally one path of it, and whether to
	// remove the workspace's files the snapshot does not have (see
	// Repo.RemoveUnlisted).
	Snapshot string `json:"snapshot,omitempty"`
	Path     string `json:"path,omitempty"`
	Clean    bool   `json:"clean,omitempty"`
}

// JobResult is how a job ended. Error is set when the job failed as a whole;
// a restore that left some files out has Failures and no Error.
type JobResult struct {
	Snapshot *Snapshot     `json:"snapshot,omitempty"`
	Restore  *RestoreStats `json:"restore,omitempty"`
	Removed  int64         `json:"removed,omitempty"`
	Failures []JobFailure  `json:"failures,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// JobFailure is one entry a restore could not write.
type JobFailure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// RestoreFailures lists the per-entry failures in an error returned by
// Repo.Restore.
func RestoreFailures(err error) []JobFailure {
	var out []JobFailure
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var re *RestoreError
		if errors.As(err, &re) && err == error(re) {
			out = append(out, JobFailure{Path: re.Path, Error: re.Err.Error()})
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &re) {
			out = append(out, JobFailure{Path: re.Path, Error: re.Err.Error()})
		}
	}
	walk(err)
	return out
}

// Frame limits: a header holds at most maxMissingBatch ids; a payload is at
// most one stored blob.
const (
	maxFrameHeader  = 1 << 20
	maxFramePayload = maxBlobSize + 1<<20
	maxRecordSize   = 1 << 20
	maxMissingBatch = 4096
	// maxConcurrentRequests bounds the requests the server handles at once
	// for one job.
	maxConcurrentRequests = 16
)

// Frame ops besides the Store methods.
const (
	opJob   = "job"
	opDone  = "done"
	opReply = "reply"

	opHas          = "has"
	opMissing      = "missing"
	opPut          = "put"
	opGet          = "get"
	opPutRecord    = "put_record"
	opGetRecord    = "get_record"
	opListRecords  = "list_records"
	opDeleteRecord = "delete_record"
)

type frame struct {
	Op       string     `json:"op"`
	Seq      uint64     `json:"seq,omitempty"`
	ID       string     `json:"id,omitempty"`
	IDs      []string   `json:"ids,omitempty"`
	Kind     string     `json:"kind,omitempty"`
	Name     string     `json:"name,omitempty"`
	Bool     bool       `json:"bool,omitempty"`
	Names    []string   `json:"names,omitempty"`
	Err      string     `json:"err,omitempty"`
	NotFound bool       `json:"not_found,omitempty"`
	Job      *Job       `json:"job,omitempty"`
	Result   *JobResult `json:"result,omitempty"`
	payload  []byte
}

func writeFrame(w io.Writer, f frame) error {
	h, err := json.Marshal(f)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 8+len(h)+len(f.payload))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(h)))
	buf = append(buf, h...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(f.payload)))
	buf = append(buf, f.payload...)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader) (frame, error) {
	var f frame
	h, err := readPart(r, maxFrameHeader)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(h, &f); err != nil {
		return f, fmt.Errorf("snapshot stream: bad frame: %w", err)
	}
	f.payload, err = readPart(r, maxFramePayload)
	if err != nil {
		return f, err
	}
	return f, nil
}

func readPart(r io.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if int64(size) > int64(limit) {
		return nil, fmt.Errorf("snapshot stream: frame of %d bytes exceeds %d", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("snapshot stream: %w", err)
	}
	return b, nil
}

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

// RemoteStore is the supervisor's end of a job stream: a Store whose calls
// the server answers. List and Delete are refused (pruning is the server's).
type RemoteStore struct {
	conn io.ReadWriteCloser
	wmu  sync.Mutex

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]chan frame
	err     error // set when the stream broke
	done    chan struct{}
}

var _ Store = (*RemoteStore)(nil)

// AcceptJob reads the job the server sent on conn and returns it with the
// store the job's Repo runs on. The caller ends with Finish, then Close.
func AcceptJob(conn io.ReadWriteCloser) (Job, *RemoteStore, error) {
	f, err := readFrame(conn)
	if err != nil {
		return Job{}, nil, fmt.Errorf("snapshot job: %w", err)
	}
	if f.Op != opJob || f.Job == nil {
		return Job{}, nil, fmt.Errorf("snapshot job: expected a job, got %q", f.Op)
	}
	rs := &RemoteStore{conn: conn, pending: map[uint64]chan frame{}, done: make(chan struct{})}
	go rs.readLoop()
	return *f.Job, rs, nil
}

func (rs *RemoteStore) readLoop() {
	defer close(rs.done)
	for {
		f, err := readFrame(rs.conn)
		if err == nil && f.Op != opReply {
			err = fmt.Errorf("snapshot stream: unexpected %q frame", f.Op)
		}
		rs.mu.Lock()
		if err != nil {
			if rs.err == nil {
				rs.err = fmt.Errorf("snapshot stream to the server: %w", err)
			}
			for seq, ch := range rs.pending {
				close(ch)
				delete(rs.pending, seq)
			}
			rs.mu.Unlock()
			return
		}
		ch := rs.pending[f.Seq]
		delete(rs.pending, f.Seq)
		rs.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// Finish reports the job's result to the server.
func (rs *RemoteStore) Finish(res JobResult) error {
	rs.wmu.Lock()
	defer rs.wmu.Unlock()
	return writeFrame(rs.conn, frame{Op: opDone, Result: &res})
}

// Close closes the stream and waits for its reader.
func (rs *RemoteStore) Close() error {
	err := rs.conn.Close()
	<-rs.done
	return err
}

func (rs *RemoteStore) call(ctx context.Context, f frame) (frame, error) {
	ch := make(chan frame, 1)
	rs.mu.Lock()
	if rs.err != nil {
		err := rs.err
		rs.mu.Unlock()
		return frame{}, err
	}
	rs.seq++
	f.Seq = rs.seq
	rs.pending[f.Seq] = ch
	rs.mu.Unlock()
	rs.wmu.Lock()
	err := writeFrame(rs.conn, f)
	rs.wmu.Unlock()
	if err != nil {
		_ = rs.conn.Close()
		return frame{}, fmt.Errorf("snapshot stream to the server: %w", err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			rs.mu.Lock()
			err := rs.err
			rs.mu.Unlock()
			return frame{}, err
		}
		if rep.Err != "" {
			if rep.NotFound {
				return rep, fmt.Errorf("%s: %w", rep.Err, ErrNotFound)
			}
			return rep, errors.New(rep.Err)
		}
		return rep, nil
	case <-ctx.Done():
		rs.mu.Lock()
		delete(rs.pending, f.Seq)
		rs.mu.Unlock()
		return frame{}, ctx.Err()
	}
}

// Has implements Store.
func (rs *RemoteStore) Has(ctx context.Context, id ID) (bool, error) {
	rep, err := rs.call(ctx, frame{Op: opHas, ID: id.String()})
	return rep.Bool, err
}

// Missing implements Store, in batches of at most maxMissingBatch ids.
func (rs *RemoteStore) Missing(ctx context.Context, ids []ID) ([]ID, error) {
	var out []ID
	for len(ids) > 0 {
		n := min(len(ids), maxMissingBatch)
		req := make([]string, n)
		for i, id := range ids[:n] {
			req[i] = id.String()
		}
		rep, err := rs.call(ctx, frame{Op: opMissing, IDs: req})
		if err != nil {
			return nil, err
		}
		for _, s := range rep.IDs {
			id, err := ParseID(s)
			if err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		ids = ids[n:]
	}
	return out, nil
}

// Put implements Store.
func (rs *RemoteStore) Put(ctx context.Context, id ID, data []byte) error {
	_, err := rs.call(ctx, frame{Op: opPut, ID: id.String(), payload: data})
	return err
}

// Get implements Store.
func (rs *RemoteStore) Get(ctx context.Context, id ID) ([]byte, error) {
	rep, err := rs.call(ctx, frame{Op: opGet, ID: id.String()})
	return rep.payload, err
}

// List implements Store: refused, the server prunes.
func (rs *RemoteStore) List(ctx context.Context, fn func(BlobInfo) error) error {
	return errDenied
}

// Delete implements Store: refused, the server prunes.
func (rs *RemoteStore) Delete(ctx context.Context, id ID, notAfter time.Time) (bool, error) {
	return false, errDenied
}

// PutRecord implements Store.
func (rs *RemoteStore) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	_, err := rs.call(ctx, frame{Op: opPutRecord, Kind: kind, Name: name, payload: data})
	return err
}

// GetRecord implements Store.
func (rs *RemoteStore) GetRecord(ctx context.Context, kind, name string) ([]byte, error) {
	rep, err := rs.call(ctx, frame{Op: opGetRecord, Kind: kind, Name: name})
	return rep.payload, err
}

// ListRecords implements Store.
func (rs *RemoteStore) ListRecords(ctx context.Context, kind string) ([]string, error) {
	rep, err := rs.call(ctx, frame{Op: opListRecords, Kind: kind})
	return rep.Names, err
}

// DeleteRecord implements Store.
func (rs *RemoteStore) DeleteRecord(ctx context.Context, kind, name string) error {
	_, err := rs.call(ctx, frame{Op: opDeleteRecord, Kind: kind, Name: name})
	return err
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

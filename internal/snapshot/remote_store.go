package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

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

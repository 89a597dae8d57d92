package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

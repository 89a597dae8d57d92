package sdk

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// Snapshot statuses.
const (
	SnapshotPending   = "PENDING"
	SnapshotRunning   = "RUNNING"
	SnapshotCompleted = "COMPLETED"
	SnapshotFailed    = "FAILED"
)

// Snapshot is the record of one snapshot of an environment's workspace.
type Snapshot struct {
	ID            string     `json:"id"`
	EnvironmentID string     `json:"environment_id"`
	Trigger       string     `json:"trigger"` // MANUAL, PRE_SHUTDOWN or SCHEDULED
	Status        string     `json:"status"`  // PENDING, RUNNING, COMPLETED or FAILED
	SnapshotID    string     `json:"snapshot_id,omitempty"`
	SizeBytes     int64      `json:"size_bytes"`
	ChangedBytes  int64      `json:"changed_bytes"` // newly stored (compressed)
	FileCount     int64      `json:"file_count"`
	DurationMS    int64      `json:"duration_ms"`
	Error         string     `json:"error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
}

// RestoreResult is what a restore did. Failures are the entries it could
// not restore (a missing or corrupt chunk); the rest was restored.
type RestoreResult struct {
	Snapshot   string `json:"snapshot"`
	Path       string `json:"path"`
	Files      int64  `json:"files"`
	Dirs       int64  `json:"dirs"`
	Symlinks   int64  `json:"symlinks"`
	Bytes      int64  `json:"bytes"`
	Removed    int64  `json:"removed"`
	DurationMS int64  `json:"duration_ms"`
	Failures   []struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"failures"`
}

// CreateSnapshot starts a snapshot of a running environment's workspace and
// returns its PENDING record; WaitForSnapshot follows it.
func (c *Client) CreateSnapshot(ctx context.Context, envID string) (*Snapshot, error) {
	var out struct {
		Snapshot Snapshot `json:"snapshot"`
	}
	if err := c.do(ctx, "POST", envPath(envID, "/snapshots"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Snapshot, nil
}

// Snapshots lists an environment's snapshots, newest first.
func (c *Client) Snapshots(ctx context.Context, envID string) ([]Snapshot, error) {
	var out struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if err := c.do(ctx, "GET", envPath(envID, "/snapshots"), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Snapshots, nil
}

// GetSnapshot returns one of an environment's snapshots.
func (c *Client) GetSnapshot(ctx context.Context, envID, id string) (*Snapshot, error) {
	var out struct {
		Snapshot Snapshot `json:"snapshot"`
	}
	if err := c.do(ctx, "GET", envPath(envID, "/snapshots/"+url.PathEscape(id)), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Snapshot, nil
}

// SnapshotError is a snapshot that FAILED.
type SnapshotError struct{ Snapshot *Snapshot }

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("snapshot %s failed: %s", e.Snapshot.ID, e.Snapshot.Error)
}

// WaitForSnapshot polls a snapshot every interval (default 250ms) until it
// is COMPLETED, returning it, or FAILED (a *SnapshotError), or ctx ends.
func (c *Client) WaitForSnapshot(ctx context.Context, envID, id string, interval time.Duration) (*Snapshot, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s, err := c.GetSnapshot(ctx, envID, id)
		if err != nil {
			return nil, err
		}
		switch s.Status {
		case SnapshotCompleted:
			return s, nil
		case SnapshotFailed:
			return s, &SnapshotError{Snapshot: s}
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-t.C:
		}
	}
}

// RestoreSnapshot restores a snapshot into its (running) environment: the
// workspace, or the file or directory path of it, becomes the snapshot's.
func (c *Client) RestoreSnapshot(ctx context.Context, envID, id, path string) (*RestoreResult, error) {
	var body any
	if path != "" {
		body = map[string]string{"path": path}
	}
	var out RestoreResult
	if err := c.do(ctx, "POST", envPath(envID, "/snapshots/"+url.PathEscape(id)+"/restore"), nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyProblem is one missing or corrupt blob of the snapshot repository
// and what it breaks.
type VerifyProblem struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"` // chunk or tree
	Missing   bool     `json:"missing"`
	Error     string   `json:"error"`
	Snapshots []string `json:"snapshots"`
	Paths     []string `json:"paths"`
}

// VerifyReport is what a check of the whole snapshot repository found.
type VerifyReport struct {
	OK         bool
	Snapshots  int             `json:"snapshots"`
	Trees      int             `json:"trees"`
	Chunks     int             `json:"chunks"`
	Bytes      int64           `json:"bytes"`
	BadRecords []string        `json:"bad_records"`
	Problems   []VerifyProblem `json:"problems"`
}

// VerifySnapshots checks the server's whole snapshot repository (admins
// only).
func (c *Client) VerifySnapshots(ctx context.Context) (*VerifyReport, error) {
	var out struct {
		OK     bool         `json:"ok"`
		Report VerifyReport `json:"report"`
	}
	if err := c.do(ctx, "POST", "/snapshots/verify", nil, nil, &out); err != nil {
		return nil, err
	}
	out.Report.OK = out.OK
	return &out.Report, nil
}

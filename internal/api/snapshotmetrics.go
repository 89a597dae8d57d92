package api

import (
	"errors"
	"time"

	"dev8.dev/dev8/internal/store"
)

// SnapshotObserver records each snapshot job, for metrics (internal/metrics
// has one). trigger is the record's (MANUAL, PRE_SHUTDOWN, SCHEDULED);
// scanned and stored are the bytes a successful snapshot covered and the
// bytes it added to the repository.
type SnapshotObserver interface {
	SnapshotDone(trigger string, d time.Duration, scanned, stored int64, err error)
}

// observeSnapshot reports a snapshot job's outcome as it was recorded.
func (a *API) observeSnapshot(trigger store.BackupTrigger, res store.BackupResult) {
	if a.snapshotObserver == nil {
		return
	}
	var err error
	if res.Error != "" {
		err = errors.New(res.Error)
	}
	a.snapshotObserver.SnapshotDone(string(trigger), res.Duration, res.SizeBytes, res.ChangedBytes, err)
}

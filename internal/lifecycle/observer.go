package lifecycle

import (
	"errors"
	"time"

	"dev8.dev/dev8/internal/store"
)

// Observer is told what the manager does, for metrics (internal/metrics
// has one). Its methods are called on the manager's paths, so they must be
// cheap and safe for concurrent use.
type Observer interface {
	// LifecycleRequested: a create, start, stop or delete was accepted.
	LifecycleRequested(action string)
	// OperationDone: one reconciler operation ended. kind is create,
	// start, stop, delete or check; outcome success, error or stale.
	OperationDone(runtime, kind, outcome string, d time.Duration)
	// ReaperRan: one idle sweep ended, having stopped that many.
	ReaperRan(stopped int, d time.Duration, err error)
	// ActivityReported: an environment's activity was recorded.
	ActivityReported()
}

type nopObserver struct{}

func (nopObserver) LifecycleRequested(string)                           {}
func (nopObserver) OperationDone(string, string, string, time.Duration) {}
func (nopObserver) ReaperRan(int, time.Duration, error)                 {}
func (nopObserver) ActivityReported()                                   {}

// QueueDepth is how many environments wait for a worker and how many a
// worker is operating on now.
func (m *Manager) QueueDepth() (waiting, processing int) {
	m.queue.mu.Lock()
	defer m.queue.mu.Unlock()
	return len(m.queue.waiting), len(m.queue.processing)
}

// operationKind names what reconciling an environment in status does; ""
// for nothing (ERROR waits for the user).
func operationKind(status store.Status) string {
	switch status {
	case store.StatusCreating:
		return "create"
	case store.StatusStarting:
		return "start"
	case store.StatusStopping:
		return "stop"
	case store.StatusDeleting:
		return "delete"
	case store.StatusRunning, store.StatusStopped:
		return "check"
	}
	return ""
}

// observeOperation reports an operation of kind that began at start and
// ended with *errp.
func (m *Manager) observeOperation(runtimeName, kind string, start time.Time, errp *error) {
	outcome := "success"
	switch err := *errp; {
	case errors.Is(err, errStale), errors.Is(err, store.ErrNotFound):
		outcome = "stale"
	case err != nil:
		outcome = "error"
	}
	m.cfg.Observer.OperationDone(runtimeName, kind, outcome, time.Since(start))
}

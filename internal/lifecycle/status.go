package lifecycle

import (
	"fmt"

	"dev8.dev/dev8/internal/store"
)

// transitions is the environment state machine. Transitional statuses
// (CREATING, STARTING, STOPPING, DELETING) record what the user asked for; the
// reconciler moves them to a resting status (RUNNING, STOPPED, ERROR, or gone).
var transitions = map[store.Status][]store.Status{
	store.StatusCreating: {store.StatusRunning, store.StatusError, store.StatusDeleting},
	store.StatusStarting: {store.StatusRunning, store.StatusError, store.StatusDeleting},
	store.StatusRunning:  {store.StatusStopping, store.StatusError, store.StatusDeleting},
	store.StatusStopping: {store.StatusStopped, store.StatusError, store.StatusDeleting},
	store.StatusStopped:  {store.StatusStarting, store.StatusDeleting},
	store.StatusError:    {store.StatusStarting, store.StatusStopping, store.StatusDeleting},
	store.StatusDeleting: {store.StatusError},
}

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to store.Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// IsTransitional reports whether the reconciler still has work to do for an
// environment in status s.
func IsTransitional(s store.Status) bool {
	switch s {
	case store.StatusCreating, store.StatusStarting, store.StatusStopping, store.StatusDeleting:
		return true
	}
	return false
}

// StateError is returned when a requested action is not allowed from the
// environment's current status. The API answers it with 409.
type StateError struct {
	Action string
	Status store.Status
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s an environment that is %s", e.Action, e.Status)
}

// NameTakenError is a create whose name another live environment of the
// same user already has. The API answers it with 409.
type NameTakenError struct{ Name string }

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("you already have an environment named %q", e.Name)
}

func (e *NameTakenError) Unwrap() error { return store.ErrConflict }

// ValidationError is a create request that cannot be satisfied as asked. The
// API answers it with 400.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

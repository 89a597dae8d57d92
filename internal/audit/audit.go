// Package audit records who did what to which object in the audit log. One
// Recorder serves the API (people and agents acting through requests), the
// backup service and the lifecycle manager (the server acting on its own),
// so every event is stamped, bounded and logged on failure the same way.
package audit

import (
	"context"
	"log/slog"
	"time"

	"dev8.dev/dev8/internal/store"
)

// Timeout bounds one insert. It outlives the caller's own context, so a
// client that hangs up, or a job cancelled by shutdown, still leaves its
// trace.
const Timeout = 5 * time.Second

// Store appends to the audit log (store.DB implements it).
type Store interface {
	InsertAuditEvent(ctx context.Context, e store.AuditEvent) error
}

// Actor is who did it: a user (UserID may be empty for an unknown login),
// a workspace's agent, or the server itself.
type Actor struct {
	Kind   string // store.ActorUser, store.ActorAgent or store.ActorSystem
	UserID string
}

// System is the server acting on its own (idle stops, restores, forks).
var System = Actor{Kind: store.ActorSystem}

// User is a person, named by id ("" when not known yet, as for a failed
// login).
func User(id string) Actor { return Actor{Kind: store.ActorUser, UserID: id} }

// Target is the object acted on.
type Target struct {
	Type string // e.g. environment, token, user
	ID   string
}

// Environment is the target for an environment.
func Environment(id string) Target { return Target{Type: "environment", ID: id} }

// Event is one thing done. RequestID and IP are set for what a request did.
type Event struct {
	Actor     Actor
	Action    string // e.g. environment.create, auth.login
	Target    Target
	Success   bool
	Detail    map[string]any
	RequestID string
	IP        string
}

// Recorder writes events to the audit log. A nil *Recorder records nothing.
type Recorder struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Recorder over st; now is the clock (nil: time.Now).
func New(st Store, log *slog.Logger, now func() time.Time) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: st, log: log, now: now}
}

// Record appends e, stamped with the recorder's clock. It is best-effort:
// a failed insert is logged and never fails what it describes.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil || r.store == nil {
		return
	}
	row := store.AuditEvent{
		CreatedAt:   r.now(),
		ActorKind:   e.Actor.Kind,
		ActorUserID: e.Actor.UserID,
		Action:      e.Action,
		ObjectType:  e.Target.Type,
		ObjectID:    e.Target.ID,
		RequestID:   e.RequestID,
		IP:          e.IP,
		Detail:      e.Detail,
		Success:     e.Success,
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	if err := r.store.InsertAuditEvent(ictx, row); err != nil {
		attrs := []any{"action", e.Action, "object_type", e.Target.Type, "object_id", e.Target.ID, "err", err}
		if e.RequestID != "" {
			attrs = append(attrs, "request_id", e.RequestID)
		}
		r.log.ErrorContext(ctx, "record audit event", attrs...)
	}
}

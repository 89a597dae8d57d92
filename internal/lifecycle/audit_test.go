package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/store"
)

type fakeAuditor struct {
	mu     sync.Mutex
	events []store.AuditEvent
	err    error
}

func (f *fakeAuditor) InsertAuditEvent(_ context.Context, e store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return f.err
}

func (f *fakeAuditor) recorded() []store.AuditEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.AuditEvent(nil), f.events...)
}

// TestReaperAudits: an idle stop is recorded with the system as actor, and
// a failing audit log does not stop the reaper.
func TestReaperAudits(t *testing.T) {
	t.Parallel()
	for _, failing := range []bool{false, true} {
		fake := &fakeAuditor{}
		if failing {
			fake.err = errors.New("audit store down")
		}
		h := newHarness(t, func(h *harness) { h.m.cfg.Audit = audit.New(fake, h.m.log, h.clock.Now) })
		idle := h.create("idle", func(p *CreateParams) { one := 1; p.AutoStopMinutes = &one })
		h.waitStatus(idle.ID, store.StatusRunning)
		h.clock.Advance(2 * time.Minute)
		if n, err := h.m.Reap(h.ctx); err != nil || n != 1 {
			t.Fatalf("failing=%v: reap = %d, %v", failing, n, err)
		}
		h.waitStatus(idle.ID, store.StatusStopped)
		got := fake.recorded()
		if len(got) != 1 {
			t.Fatalf("failing=%v: %d audit events, want 1: %+v", failing, len(got), got)
		}
		e := got[0]
		if e.ActorKind != store.ActorSystem || e.ActorUserID != "" || e.Action != "environment.idle_stop" ||
			e.ObjectType != "environment" || e.ObjectID != idle.ID || !e.Success || e.Detail["owner_id"] != h.user.ID || !e.CreatedAt.Equal(h.clock.Now()) {
			t.Errorf("failing=%v: event = %+v", failing, e)
		}
	}
}

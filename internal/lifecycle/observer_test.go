package lifecycle

import (
	"errors"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

type operation struct{ runtime, kind, outcome string }

// recorder is an Observer that keeps what it was told.
type recorder struct {
	ops chan operation

	mu        sync.Mutex
	requested []string
	sweeps    []int
	activity  int
}

func (r *recorder) LifecycleRequested(action string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requested = append(r.requested, action)
}

func (r *recorder) OperationDone(rt, kind, outcome string, d time.Duration) {
	if d <= 0 {
		panic("operation without a duration")
	}
	r.ops <- operation{rt, kind, outcome}
}

func (r *recorder) ReaperRan(stopped int, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.sweeps = append(r.sweeps, stopped)
	}
}

func (r *recorder) ActivityReported() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activity++
}

// waitOp waits until the manager reports want (operations are reported
// after the status change a test waits for).
func (h *harness) waitOp(r *recorder, want operation) {
	h.t.Helper()
	for {
		select {
		case op := <-r.ops:
			if op == want {
				return
			}
		case <-h.ctx.Done():
			h.t.Fatalf("no operation %+v reported", want)
		}
	}
}

func TestObserver(t *testing.T) {
	t.Parallel()
	rec := &recorder{ops: make(chan operation, 1000)}
	h := newHarness(t, func(h *harness) { h.m.cfg.Observer = rec })

	env := h.create("watched", func(p *CreateParams) { one := 1; p.AutoStopMinutes = &one })
	h.waitStatus(env.ID, store.StatusRunning)
	h.waitOp(rec, operation{"mem", "create", "success"})
	if err := h.m.Touch(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Touch(h.ctx, "env_doesnotexist0000000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touch of nothing: %v", err)
	}

	h.clock.Advance(2 * time.Minute)
	if n, err := h.m.Reap(h.ctx); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want 1 stopped", n, err)
	}
	h.waitStatus(env.ID, store.StatusStopped)
	h.waitOp(rec, operation{"mem", "stop", "success"})
	if _, err := h.m.Start(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(env.ID, store.StatusRunning)
	h.waitOp(rec, operation{"mem", "start", "success"})

	if _, err := h.m.Delete(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	h.waitDeleted(env.ID)
	h.waitOp(rec, operation{"mem", "delete", "success"})

	rec.mu.Lock()
	defer rec.mu.Unlock()
	wantRequested := []string{"create", "start", "delete"}
	if len(rec.requested) != len(wantRequested) {
		t.Fatalf("requested %v, want %v (an idle stop is the reaper's, not a request)", rec.requested, wantRequested)
	}
	for i := range wantRequested {
		if rec.requested[i] != wantRequested[i] {
			t.Fatalf("requested %v, want %v", rec.requested, wantRequested)
		}
	}
	if rec.activity != 1 {
		t.Errorf("%d activity reports, want 1 (a failed touch is not one)", rec.activity)
	}
	if len(rec.sweeps) != 1 || rec.sweeps[0] != 1 {
		t.Errorf("sweeps %v, want one that stopped 1", rec.sweeps)
	}
}

func TestObserverSeesFailures(t *testing.T) {
	t.Parallel()
	rec := &recorder{ops: make(chan operation, 1000)}
	h := newHarness(t, func(h *harness) { h.m.cfg.Observer = rec })
	id := "env_observefail00000000a"
	h.rt.failNext("create", id, runtime.Permanent(errors.New("no such image")))
	env, err := h.db.CreateEnvironment(h.ctx, mustResolve(t, h, "broken", id))
	if err != nil {
		t.Fatal(err)
	}
	h.m.queue.add(env.ID)
	h.waitStatus(env.ID, store.StatusError)
	h.waitOp(rec, operation{"mem", "create", "error"})
}

func TestQueueDepth(t *testing.T) {
	t.Parallel()
	m := &Manager{queue: newQueue()}
	m.queue.add("a")
	m.queue.add("b")
	m.queue.add("a")
	if w, p := m.QueueDepth(); w != 2 || p != 0 {
		t.Fatalf("QueueDepth = %d, %d; want 2, 0", w, p)
	}
	id, _ := m.queue.get(t.Context())
	if w, p := m.QueueDepth(); w != 1 || p != 1 {
		t.Fatalf("after get: QueueDepth = %d, %d; want 1, 1", w, p)
	}
	m.queue.done(id)
	if w, p := m.QueueDepth(); w != 1 || p != 0 {
		t.Fatalf("after done: QueueDepth = %d, %d; want 1, 0", w, p)
	}
}

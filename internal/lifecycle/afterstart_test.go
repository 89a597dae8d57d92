package lifecycle

import (
	"context"
	"errors"
	"testing"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

type afterStartCall struct {
	env   store.Environment
	fresh bool
}

// TestAfterStartReportsFreshStorage: the after-start hook hears of every
// start that reached RUNNING and whether the runtime made the workspace
// storage anew: on the first start, after the storage was lost (even when
// the start that found it lost failed and a later one succeeded), and not
// otherwise.
func TestAfterStartReportsFreshStorage(t *testing.T) {
	t.Parallel()
	calls := make(chan afterStartCall, 16)
	h := newHarness(t, func(h *harness) {
		h.m.cfg.AfterStart = func(_ context.Context, env store.Environment, fresh bool) {
			calls <- afterStartCall{env, fresh}
		}
	})
	next := func(what string, wantFresh bool) store.Environment {
		t.Helper()
		select {
		case c := <-calls:
			if c.fresh != wantFresh || c.env.Status != store.StatusRunning {
				t.Fatalf("%s: after-start hook got %s fresh=%v, want RUNNING fresh=%v", what, c.env.Status, c.fresh, wantFresh)
			}
			return c.env
		case <-h.ctx.Done():
			t.Fatalf("%s: after-start hook not called", what)
		}
		return store.Environment{}
	}
	stop := func(id string) {
		t.Helper()
		if _, err := h.m.Stop(h.ctx, id); err != nil {
			t.Fatal(err)
		}
		h.waitStatus(id, store.StatusStopped)
	}
	start := func(id string) {
		t.Helper()
		if _, err := h.m.Start(h.ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	env := h.create("fresh", nil)
	next("first start", true)
	stop(env.ID)
	start(env.ID)
	next("start over kept storage", false)
	stop(env.ID)

	// Storage lost while stopped; the start that finds it fails for
	// another reason, and the next one still reports it.
	if err := h.rt.loseStorage(env.ID); err != nil {
		t.Fatal(err)
	}
	h.rt.failNext("start", env.ID, runtime.Permanent(errors.New("engine refused")))
	start(env.ID)
	h.waitStatus(env.ID, store.StatusError)
	start(env.ID)
	next("start after the storage was lost", true)

	// What the server did is shown on the environment until its next change.
	got, err := h.m.NoteRunning(h.ctx, env.ID, "restored", "restored from snapshot s1", nil)
	if err != nil || got.StatusReason != "restored from snapshot s1" {
		t.Fatalf("NoteRunning = %+v, %v", got, err)
	}
	stop(env.ID)
	if _, err := h.m.NoteRunning(h.ctx, env.ID, "restored", "late", nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("NoteRunning of a stopped environment: %v, want ErrNotRunning", err)
	}
	select {
	case c := <-calls:
		t.Fatalf("unexpected after-start call %+v", c)
	default:
	}
}

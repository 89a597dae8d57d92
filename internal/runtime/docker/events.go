package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"dev8.dev/dev8/internal/runtime"
)

// NotifyExits implements runtime.ExitNotifier. The first call starts watching
// the engine's "die" events for managed containers (until Close); an
// environment is sent when its container died and Inspect then shows it
// stopped with an ExitReason (so not after a Stop, of this Runtime or
// another). Sends never block: when ch is full the id is dropped and the
// lifecycle's resync notices the exit. Events missed while the engine was
// unreachable are not replayed beyond the last one seen.
func (r *Runtime) NotifyExits(ch chan<- string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notify = append(r.notify, ch)
	if r.watchCancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.watchCancel, r.watchDone = cancel, make(chan struct{})
		go r.watchEvents(ctx, r.watchDone)
	}
}

func (r *Runtime) watchEvents(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("label", runtime.LabelManaged+"=true"),
		filters.Arg("label", runtime.LabelInstallation+"="+r.cfg.Installation),
	)
	var since string
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msgs, errs := r.events(ctx, since, f)
	recv:
		for {
			select {
			case m := <-msgs:
				backoff = 100 * time.Millisecond
				if m.TimeNano > 0 {
					// Resume after this one on a reconnect (the engine
					// takes seconds.nanoseconds).
					since = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9+1)
				}
				r.handleDie(ctx, m.Actor.Attributes[runtime.LabelEnvironment])
			case err := <-errs:
				if ctx.Err() == nil {
					r.log.Warn("engine events interrupted, reconnecting", "err", err, "in", backoff)
				}
				break recv
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// events subscribes to the engine's events. Client.Events reads the API
// version without negotiating it first (a data race with any concurrent first
// request), so a request that negotiates it goes first.
func (r *Runtime) events(ctx context.Context, since string, f filters.Args) (<-chan events.Message, <-chan error) {
	if _, err := r.cli.ServerVersion(ctx); err != nil {
		errs := make(chan error, 1)
		errs <- err
		return nil, errs
	}
	return r.cli.Events(ctx, events.ListOptions{Since: since, Filters: f})
}

func (r *Runtime) handleDie(ctx context.Context, environmentID string) {
	if environmentID == "" {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	inst, err := r.Inspect(ictx, environmentID)
	cancel()
	if err != nil || inst.State != runtime.StateStopped || inst.ExitReason == "" {
		return // gone, running again, or stopped on request
	}
	r.log.Info("workspace container exited on its own", "environment", environmentID, "reason", inst.ExitReason)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.notify {
		select {
		case ch <- environmentID:
		default:
		}
	}
}

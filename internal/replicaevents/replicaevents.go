// Package replicaevents carries environment changes between the replicas
// of a server that share one PostgreSQL database, so that a dashboard's
// event stream on one replica shows what another replica did. Each
// replica announces the changes its lifecycle makes (an environment's id
// and owner, never its contents) and, hearing another's, reads the
// environment from the store and publishes it to its own subscribers.
//
// Delivery is best effort, as the event stream already is: a note is
// dropped when the queue is full or the listener is reconnecting, and the
// next change of that environment carries its whole state again.
package replicaevents

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"dev8.dev/dev8/internal/store"
)

// Channel is the notification channel the replicas share.
const Channel = "dev8_environments"

// Store sends and hears notifications and reads environments (store.DB).
type Store interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string, ready func(), heard func(payload string)) error
	GetEnvironment(ctx context.Context, id string) (store.Environment, error)
}

// Publisher tells this replica's subscribers of another replica's change
// (lifecycle.Manager).
type Publisher interface {
	PublishFromReplica(env store.Environment)
}

// note is what crosses: which replica changed which environment, whose it
// is (subscribers filter on the owner, and a deleted environment can no
// longer be read), and whether it is gone.
type note struct {
	Origin  string `json:"o"`
	ID      string `json:"id"`
	UserID  string `json:"u"`
	Deleted bool   `json:"d,omitempty"`
}

// queueSize bounds the notes waiting to be sent; a burst beyond it drops
// notes rather than slow the lifecycle.
const queueSize = 1024

// Config configures a Bus.
type Config struct {
	Store Store
	// Origin names this replica; notes it sent itself are not published
	// twice.
	Origin string
	Logger *slog.Logger
	// Ready, if set, is called each time the listener (re)connects.
	Ready func()
}

// Bus announces this replica's changes and publishes the others'.
type Bus struct {
	cfg   Config
	log   *slog.Logger
	queue chan note
}

// New returns a Bus; Run it.
func New(cfg Config) *Bus {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Bus{cfg: cfg, log: cfg.Logger, queue: make(chan note, queueSize)}
}

// Announce queues env's change for the other replicas; it never blocks.
// A nil Bus (a server alone) announces nothing.
func (b *Bus) Announce(env store.Environment) {
	if b == nil {
		return
	}
	select {
	case b.queue <- note{Origin: b.cfg.Origin, ID: env.ID, UserID: env.UserID, Deleted: env.DeletedAt != nil}:
	default:
		b.log.Warn("replica events: queue full; a change is not announced to other replicas", "environment", env.ID)
	}
}

// Run sends this replica's notes and publishes the others' to local until
// ctx ends.
func (b *Bus) Run(ctx context.Context, local Publisher) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { b.send(ctx); return nil })
	g.Go(func() error { b.listen(ctx, local); return nil })
	return g.Wait()
}

func (b *Bus) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-b.queue:
			payload, err := json.Marshal(n)
			if err == nil {
				err = b.cfg.Store.Notify(ctx, Channel, string(payload))
			}
			if err != nil && ctx.Err() == nil {
				b.log.Warn("replica events: announce a change", "environment", n.ID, "err", err)
			}
		}
	}
}

// listen hears the other replicas' notes, listening again (after a pause
// that grows to 5 s) whenever the connection fails.
func (b *Bus) listen(ctx context.Context, local Publisher) {
	const minPause, maxPause = 100 * time.Millisecond, 5 * time.Second
	pause := minPause
	for {
		heard := false
		err := b.cfg.Store.Listen(ctx, Channel, b.cfg.Ready, func(payload string) {
			heard = true
			b.publish(ctx, local, payload)
		})
		if ctx.Err() != nil {
			return
		}
		if heard {
			pause = minPause
		}
		b.log.Warn("replica events: listening failed; listening again", "retry_in", pause, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

func (b *Bus) publish(ctx context.Context, local Publisher, payload string) {
	var n note
	if err := json.Unmarshal([]byte(payload), &n); err != nil || n.ID == "" {
		b.log.Warn("replica events: a note that is not one", "err", err)
		return
	}
	if n.Origin == b.cfg.Origin {
		return
	}
	if !n.Deleted {
		env, err := b.cfg.Store.GetEnvironment(ctx, n.ID)
		if err == nil {
			local.PublishFromReplica(env)
			return
		}
		if !errors.Is(err, store.ErrNotFound) {
			b.log.Warn("replica events: read a changed environment", "environment", n.ID, "err", err)
			return
		}
		// Deleted since: said as a deletion.
	}
	now := time.Now().UTC()
	local.PublishFromReplica(store.Environment{ID: n.ID, UserID: n.UserID, DeletedAt: &now})
}

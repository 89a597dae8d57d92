package lifecycle

import (
	"context"
	"sync"

	"dev8.dev/dev8/internal/store"
)

// broadcaster fans environment changes out to subscribers (live dashboards,
// `dev8 create` following its environment, tests). A slow subscriber misses
// events rather than slowing the lifecycle: each event carries the whole
// environment, so the next one it gets is complete.
type broadcaster struct {
	mu   sync.Mutex
	subs map[chan store.Environment]struct{}
}

// Subscribe returns a channel of every environment change from now on, and
// a func that ends the subscription.
func (m *Manager) Subscribe() (<-chan store.Environment, func()) {
	ch := make(chan store.Environment, 64)
	b := &m.events
	b.mu.Lock()
	if b.subs == nil {
		b.subs = make(map[chan store.Environment]struct{})
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, sync.OnceFunc(func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	})
}

// publish tells this replica's subscribers of a change this manager made,
// and the other replicas' (Config.Announce).
func (m *Manager) publish(env store.Environment) {
	m.events.publish(env)
	if m.cfg.Announce != nil {
		m.cfg.Announce(env)
	}
}

// PublishFromReplica tells this replica's subscribers of a change another
// replica made (and announced). A deleted environment has DeletedAt set.
func (m *Manager) PublishFromReplica(env store.Environment) { m.events.publish(env) }

func (b *broadcaster) publish(env store.Environment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- env:
		default:
		}
	}
}

// WaitFor blocks until environment id satisfies cond, and returns it. A
// deleted environment is passed with DeletedAt set.
func (m *Manager) WaitFor(ctx context.Context, id string, cond func(store.Environment) bool) (store.Environment, error) {
	events, cancel := m.Subscribe()
	defer cancel()
	env, err := m.store.GetEnvironment(ctx, id)
	if err != nil {
		return store.Environment{}, err
	}
	for !cond(env) {
		select {
		case <-ctx.Done():
			return env, ctx.Err()
		case e := <-events:
			if e.ID == id {
				env = e
			}
		}
	}
	return env, nil
}

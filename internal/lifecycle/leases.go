package lifecycle

import (
	"context"
	"strings"
	"time"
)

// Replicas of the server share one store and each run a Manager. Each
// environment's operations run under the lease "environment/<id>", so two
// replicas never drive one environment at once: a replica that finds the
// lease held looks again shortly (the holder may finish without doing
// what this replica was asked for since), and a replica that dies mid-
// operation leaves its lease to expire, after which takeOver on every
// replica queues the environment and one of them finishes it. The reaper
// and resync run on one replica at a time (lead).

// environmentLease names environment id's lease.
func environmentLease(id string) string { return environmentLeasePrefix + id }

const environmentLeasePrefix = "environment/"

// heldEnvironment is an environment's lease while its operation runs.
type heldEnvironment struct {
	// ctx ends when the lease is lost (or the manager stops).
	ctx     context.Context
	release func()
}

// holdEnvironment takes environment id's lease for one operation. ok is
// false when another replica holds it (the environment is queued again to
// look later) or the store could not be asked (queued again, after the
// retry delay).
func (m *Manager) holdEnvironment(ctx context.Context, id string) (heldEnvironment, bool) {
	if m.cfg.Leases == nil {
		return heldEnvironment{ctx: ctx, release: func() {}}, true
	}
	h, ok, err := m.cfg.Leases.TryHold(ctx, environmentLease(id))
	switch {
	case err != nil:
		if ctx.Err() == nil {
			m.log.Warn("take environment lease; retrying", "environment", id, "err", err)
			m.queue.addAfter(id, m.cfg.RetryBase)
		}
		return heldEnvironment{}, false
	case !ok:
		// Another replica is at it. Looking again once a renewal interval
		// has passed costs one write, and catches a request it did not
		// see (a stop that came in while it started the workspace).
		m.queue.addAfter(id, m.leaseRecheck())
		return heldEnvironment{}, false
	}
	return heldEnvironment{ctx: h.Context(), release: h.Release}, true
}

// leaseRecheck is how soon an environment whose lease another replica
// holds is looked at again.
func (m *Manager) leaseRecheck() time.Duration { return m.cfg.Leases.TTL() / 3 }

// takeOver queues the environments whose operations a dead replica began:
// their leases expired unreleased.
func (m *Manager) takeOver(ctx context.Context) {
	names, err := m.cfg.Leases.Expired(ctx, environmentLeasePrefix)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("look for abandoned environment operations", "err", err)
		}
		return
	}
	for _, name := range names {
		id := strings.TrimPrefix(name, environmentLeasePrefix)
		m.log.Info("taking over an environment operation a replica abandoned", "environment", id)
		m.queue.add(id)
	}
}

// lead runs fn every interval on the one replica that holds lease name
// (on every call, when there are no leases: the manager is alone).
func (m *Manager) lead(ctx context.Context, name string, interval time.Duration, fn func(context.Context)) {
	m.cfg.Leases.Lead(ctx, name, func(ctx context.Context) { m.every(ctx, interval, fn) })
}

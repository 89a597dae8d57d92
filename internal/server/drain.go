package server

import (
	"context"
	"slices"
	"time"

	"dev8.dev/dev8/internal/replicas"
	"dev8.dev/dev8/internal/store"
)

// handoffTimeout bounds how long a stopping replica waits for its
// supervisors to reach another (they redial within a second or two; a
// workspace being stopped may never), so that with the drain delay it fits
// in an orchestrator's grace period (Kubernetes' default: 30 s).
const handoffTimeout = 10 * time.Second

// drain turns the server away from new work before it stops: /ready
// answers 503 and new tunnels are refused at once, so the load balancer
// stops sending it requests and supervisors that dial meet another
// replica; for DrainDelay it goes on answering what is already on its way
// (the balancer notices at its next health check); then its supervisors
// are told to move (their tunnels close, and each redials the balancer,
// which gives it another replica) and it waits until they have, and event
// streams end (browsers reconnect elsewhere). What is left is Shutdown's:
// requests in flight finish.
func (s *Server) drain(replica *replicas.Replica) {
	s.api.Drain()
	s.Tunnels.Drain()
	// Replicas stopping together (compose down) do not wait for each
	// other's supervisors.
	ctx, cancel := context.WithTimeout(context.Background(), handoffTimeout)
	if err := replica.Drain(ctx); err != nil {
		s.log.Warn("draining: the other replicas are not told", "err", err)
	}
	cancel()
	if d := s.cfg.DrainDelay; d > 0 {
		s.log.Info("draining: /ready says so; still answering while the load balancer turns away", "for", d)
		<-time.After(d)
	}
	s.log.Info("shutting down")
	s.handOff(replica)
	// Event streams would hold Shutdown until its timeout.
	s.api.Shutdown()
}

// handOff drops the tunnels. Tunnels and the connections through them are
// hijacked: Shutdown neither waits for nor closes them. Supervisors redial
// the load balancer; a replica with others alive waits (a bounded while)
// until they have reached one, so that it exits once its workspaces are
// reachable again. A server alone, or whose others are all draining too,
// has nowhere to send them: they redial until a replica is back.
func (s *Server) handOff(replica *replicas.Replica) {
	ctx, cancel := context.WithTimeout(context.Background(), handoffTimeout)
	defer cancel()
	others, err := replica.LiveOthers(ctx)
	if err != nil {
		s.log.Warn("shutting down: cannot tell whether other replicas are alive; supervisors are not awaited elsewhere", "err", err)
	}
	others = slices.DeleteFunc(others, func(o store.Replica) bool { return o.Draining })
	if len(others) == 0 {
		s.Tunnels.Close()
		return
	}
	start := time.Now()
	dropped, stayed := s.Tunnels.Handoff(ctx)
	if stayed > 0 {
		s.log.Warn("supervisors had not moved to another replica in time; they go on redialing", "tunnels", dropped, "notMoved", stayed, "waited", handoffTimeout)
	} else if dropped > 0 {
		s.log.Info("supervisors moved to other replicas", "tunnels", dropped, "took", time.Since(start).Round(time.Millisecond))
	}
}

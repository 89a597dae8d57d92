package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// Holders knows which replica of the server holds each environment's
// tunnel, and reaches the others (internal/replicas implements it over
// the store). A Registry without one is a single server's: it knows only
// its own tunnels.
type Holders interface {
	// Record notes that this replica holds environmentID's tunnel, which
	// arrived at since.
	Record(ctx context.Context, environmentID string, since time.Time) error
	// Forget removes the note of this replica's tunnel from since, unless
	// a newer connection (here or elsewhere) replaced it.
	Forget(ctx context.Context, environmentID string, since time.Time) error
	// Held reports whether a live replica other than this one holds
	// environmentID's tunnel by a connection that arrived at or after
	// since.
	Held(ctx context.Context, environmentID string, since time.Time) (bool, error)
	// HeldHere counts the tunnels still noted as this replica's: one
	// that another replica takes is noted as that one's instead.
	HeldHere(ctx context.Context) (int, error)
	// DialHolder connects to the relay of the live replica other than
	// this one that holds environmentID's tunnel; the far end runs
	// ServeRelay on it. ErrNoHolder: no such replica.
	DialHolder(ctx context.Context, environmentID string) (net.Conn, error)
}

// ErrNoHolder is Holders.DialHolder's answer when no live other replica
// holds the tunnel.
var ErrNoHolder = errors.New("tunnel: no other live replica holds the tunnel")

// ErrNotHere is ServeRelay's answer when this replica does not hold the
// environment's tunnel (any more).
var ErrNotHere = errors.New("tunnel: this replica does not hold the workspace's tunnel")

// DefaultHolderPoll is how often a Dial or Await that waits for a
// supervisor asks the Holders whether another replica has it.
const DefaultHolderPoll = 500 * time.Millisecond

// relayAcceptTimeout bounds how long ServeRelay waits for the dialing
// replica to open its stream.
const relayAcceptTimeout = 30 * time.Second

// SetHolders makes r a replica among others: its tunnels are recorded in
// h, and what it dials that it does not hold is relayed to the replica that
// does. poll (<= 0: DefaultHolderPoll) is how often waiting callers ask h.
// Call it before the Registry is used.
func (r *Registry) SetHolders(h Holders, poll time.Duration) {
	if poll <= 0 {
		poll = DefaultHolderPoll
	}
	r.holders, r.holderPoll = h, poll
}

// Reachable reports whether environmentID's supervisor is connected here
// or to a live other replica, which streams are relayed to. Connected is
// this replica's alone.
func (r *Registry) Reachable(ctx context.Context, environmentID string) bool {
	if r.Connected(environmentID) {
		return true
	}
	return r.heldElsewhere(ctx, environmentID, time.Time{})
}

// Local lists the tunnels this replica holds, by environment, with when
// each arrived: what its Holders must know of it.
func (r *Registry) Local() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.sessions))
	for id, s := range r.sessions {
		if !s.IsClosed() {
			out[id] = r.since[id]
		}
	}
	return out
}

// ServeRelay serves another replica's relay connection for
// environmentID's supervisor, whose tunnel this replica holds: it accepts
// the one stream the other replica opens on conn (DialHolder's, made a
// stream by Dial) and joins it to a new stream of the local tunnel, raw:
// the other replica then speaks the stream's header and reply itself, so
// its callers see what a local Dial gives. It never relays further, so
// relays cannot loop. It returns once the stream is done; ErrNotHere if
// the tunnel is not here.
func (r *Registry) ServeRelay(ctx context.Context, environmentID string, conn net.Conn) error {
	sess, err := yamux.Server(newFrameConn(conn), yamuxConfig(r.log))
	if err != nil {
		conn.Close()
		return fmt.Errorf("tunnel: relay session: %w", err)
	}
	defer sess.Close()
	actx, cancel := context.WithTimeout(ctx, relayAcceptTimeout)
	in, err := sess.AcceptStreamWithContext(actx)
	cancel()
	if err != nil {
		return fmt.Errorf("tunnel: accept relayed stream: %w", err)
	}
	r.mu.Lock()
	local := r.sessions[environmentID]
	r.mu.Unlock()
	if local == nil || local.IsClosed() {
		in.Close()
		return ErrNotHere
	}
	out, err := local.OpenStream()
	if err != nil {
		in.Close()
		return fmt.Errorf("tunnel: open stream for a relay: %w", err)
	}
	Join(in, out)
	return nil
}

// relayedConn is a stream through another replica: one yamux stream over
// the relay connection, so it behaves as a local stream does. Close, as a
// yamux stream's, only ends what this side sends: the answer still comes
// (an upload's result), and the far end closes the relay connection once
// the supervisor's side has ended too (ServeRelay). Should it never, the
// session is closed when yamux gives up on the stream.
type relayedConn struct {
	*yamux.Stream
	sess         *yamux.Session
	closeTimeout time.Duration
	once         sync.Once
}

func (c *relayedConn) Close() error {
	err := c.Stream.Close()
	c.once.Do(func() { time.AfterFunc(c.closeTimeout, func() { c.sess.Close() }) })
	return err
}

// openRelayed makes conn, a relay connection from DialHolder, a stream.
func openRelayed(conn net.Conn, log *slog.Logger) (net.Conn, error) {
	cfg := yamuxConfig(log)
	sess, err := yamux.Client(newFrameConn(conn), cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tunnel: relay session: %w", err)
	}
	stream, err := sess.OpenStream()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("tunnel: open relayed stream: %w", err)
	}
	return &relayedConn{Stream: stream, sess: sess, closeTimeout: cfg.StreamCloseTimeout}, nil
}

// dialRelayed opens a stream to environmentID's supervisor through the
// replica that holds its tunnel and sends h. ErrNoHolder: none does.
func (r *Registry) dialRelayed(ctx context.Context, environmentID string, h Header) (net.Conn, error) {
	conn, err := r.holders.DialHolder(ctx, environmentID)
	if err != nil {
		return nil, err
	}
	stream, err := openRelayed(conn, r.log)
	if err != nil {
		return nil, err
	}
	if err := handshake(ctx, stream, h); err != nil {
		stream.Close()
		return nil, err
	}
	return stream, nil
}

// handoffPoll is how often Handoff asks the Holders whether the
// supervisors it dropped have connected elsewhere (one query, whatever
// their number).
const handoffPoll = 100 * time.Millisecond

// Handoff is Close for a replica among others: it drops every tunnel and
// waits until each supervisor has connected to another replica (the load
// balancer gives it one when it redials) or ctx ends, so that a replica
// shutting down exits once its workspaces are reachable again. It returns
// how many tunnels it dropped and how many of those had not moved. Without
// Holders (a server alone) it does not wait.
func (r *Registry) Handoff(ctx context.Context) (dropped, stayed int) {
	dropped = len(r.closeAll())
	if r.holders == nil || dropped == 0 {
		return dropped, 0
	}
	tick := time.NewTicker(handoffPoll)
	defer tick.Stop()
	// Closed, this registry forgets none of its tunnels: the notes left
	// as its own are those not taken elsewhere yet.
	stayed = dropped
	for {
		n, err := r.holders.HeldHere(ctx)
		switch {
		case err == nil:
			stayed = n
		case ctx.Err() == nil:
			r.log.Warn("tunnel: count the tunnels still noted as this replica's", "err", err)
		}
		if stayed == 0 {
			return dropped, 0
		}
		select {
		case <-ctx.Done():
			return dropped, stayed
		case <-tick.C:
		}
	}
}

// heldElsewhere asks the Holders whether a live other replica holds
// environmentID's tunnel from since; without Holders, or when the store
// cannot say, it does not.
func (r *Registry) heldElsewhere(ctx context.Context, environmentID string, since time.Time) bool {
	if r.holders == nil {
		return false
	}
	held, err := r.holders.Held(ctx, environmentID, since)
	if err != nil && ctx.Err() == nil {
		r.log.WarnContext(ctx, "tunnel: look up the replica holding a tunnel", "environment", environmentID, "err", err)
	}
	return held
}

// record and forget keep the Holders told of this replica's tunnels.
// Failures are logged: the tunnel works here regardless, and only other
// replicas' relays miss it.
func (r *Registry) record(ctx context.Context, environmentID string, since time.Time) {
	if r.holders == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holdersTimeout)
	defer cancel()
	if err := r.holders.Record(ctx, environmentID, since); err != nil {
		r.log.Warn("tunnel: record this replica as the tunnel's holder; other replicas cannot relay to it", "environment", environmentID, "err", err)
	}
}

func (r *Registry) forget(ctx context.Context, environmentID string, since time.Time) {
	if r.holders == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holdersTimeout)
	defer cancel()
	if err := r.holders.Forget(ctx, environmentID, since); err != nil {
		r.log.Warn("tunnel: forget this replica as the tunnel's holder", "environment", environmentID, "err", err)
	}
}

// holdersTimeout bounds each write to the Holders.
const holdersTimeout = 10 * time.Second

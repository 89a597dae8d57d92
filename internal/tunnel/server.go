package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// yamuxConfig is shared by both ends. Keepalives find a dead peer (a killed
// server, a frozen workspace) within a minute; a 1 MiB window lets one
// stream (an scp) fill a fast link without a round trip per 256 KiB.
func yamuxConfig(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = 15 * time.Second
	c.ConnectionWriteTimeout = 30 * time.Second
	c.MaxStreamWindowSize = 1 << 20
	c.StreamOpenTimeout = 30 * time.Second
	c.LogOutput = nil
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return c
}

// ErrNotConnected is returned by Dial when the environment's supervisor did
// not connect before the context ended.
var ErrNotConnected = errors.New("the workspace's supervisor is not connected")

// Registry holds the server's end of every supervisor's tunnel.
type Registry struct {
	log *slog.Logger
	obs Observer
	// holders, when set, makes this registry one replica's among others
	// (SetHolders); holderPoll is how often waiting callers ask it.
	holders    Holders
	holderPoll time.Duration

	mu       sync.Mutex
	sessions map[string]*yamux.Session
	// since is when each session in sessions was registered (AwaitSince).
	since map[string]time.Time
	// changed is closed (and replaced) whenever a session for the
	// environment arrives, waking Dials that wait for it.
	changed map[string]chan struct{}
	// closed: the server is shutting down; a supervisor that reconnects
	// meanwhile (the listener still accepts until the HTTP server's
	// shutdown) is turned away, or its tunnel would outlive the server
	// and the supervisor would never redial the next one.
	closed bool
	// draining: new tunnels are turned away, live ones kept (Drain).
	draining bool
}

// errClosed answers a tunnel that arrives after Close.
var errClosed = errors.New("tunnel: the server is shutting down")

// NewRegistry returns an empty Registry.
func NewRegistry(log *slog.Logger) *Registry {
	return &Registry{log: log, obs: nopObserver{}, sessions: map[string]*yamux.Session{}, since: map[string]time.Time{}, changed: map[string]chan struct{}{}}
}

// Serve runs the tunnel of environmentID's supervisor over conn until it
// closes or ctx ends. A newer connection for the same environment replaces
// an older one (a supervisor that reconnected before the server noticed the
// old connection died).
func (r *Registry) Serve(ctx context.Context, environmentID string, conn net.Conn) error {
	sess, err := yamux.Client(newFrameConn(conn), yamuxConfig(r.log))
	if err != nil {
		conn.Close()
		return fmt.Errorf("tunnel: start session: %w", err)
	}
	r.mu.Lock()
	if r.closed || r.draining {
		r.mu.Unlock()
		sess.Close()
		return errClosed
	}
	r.obs.TunnelConnected() // before a Dial can see the session
	old := r.sessions[environmentID]
	since := time.Now()
	r.sessions[environmentID] = sess
	r.since[environmentID] = since
	if ch := r.changed[environmentID]; ch != nil {
		close(ch)
		delete(r.changed, environmentID)
	}
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	r.log.Info("supervisor connected", "environment", environmentID)
	// Other replicas learn that this one holds the tunnel; the one it
	// replaced, if elsewhere, is superseded by it.
	r.record(ctx, environmentID, since)

	select {
	case <-ctx.Done():
	case <-sess.CloseChan():
	}
	sess.Close()
	r.mu.Lock()
	if r.sessions[environmentID] == sess {
		delete(r.sessions, environmentID)
		delete(r.since, environmentID)
	}
	closed := r.closed
	r.mu.Unlock()
	// A replica shutting down deletes its registration, and every
	// tunnel noted as its goes with it: no write per tunnel.
	if !closed {
		r.forget(ctx, environmentID, since)
	}
	r.log.Info("supervisor disconnected", "environment", environmentID)
	return nil
}

// Connected reports whether environmentID's supervisor is connected.
func (r *Registry) Connected(environmentID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sessions[environmentID]
	return s != nil && !s.IsClosed()
}

// Disconnect drops environmentID's tunnel (its environment was stopped or
// deleted).
func (r *Registry) Disconnect(environmentID string) {
	r.mu.Lock()
	s := r.sessions[environmentID]
	delete(r.sessions, environmentID)
	delete(r.since, environmentID)
	r.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Drain turns new tunnels away and keeps those it has (until Close): the
// server is about to stop, and a supervisor that dials now should meet
// another replica.
func (r *Registry) Drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining = true
}

// Draining reports whether new tunnels are turned away (Drain or Close):
// the gateway says so before the websocket upgrade, so the supervisor backs
// off and dials again, meeting another replica.
func (r *Registry) Draining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.draining || r.closed
}

// Close drops every tunnel (the server is shutting down). Supervisors
// reconnect to the next server; their workspaces keep running.
func (r *Registry) Close() { r.closeAll() }

// closeAll is Close, and returns when each dropped tunnel had arrived.
func (r *Registry) closeAll() map[string]time.Time {
	r.mu.Lock()
	r.closed = true
	sessions, since := r.sessions, r.since
	r.sessions = map[string]*yamux.Session{}
	r.since = map[string]time.Time{}
	r.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	return since
}

// Dial opens a stream to environmentID's supervisor for the service h asks
// for. If the supervisor is not connected yet (the workspace just started,
// or the server just restarted) it waits for it until ctx ends. With
// Holders, a tunnel another replica holds is reached through that replica,
// and a supervisor that connects here meanwhile is taken at once.
func (r *Registry) Dial(ctx context.Context, environmentID string, h Header) (net.Conn, error) {
	var relayErr error // the last relay attempt's failure, for the error
	for {
		sess, wake := r.lookup(environmentID, time.Time{})
		if sess != nil {
			stream, err := sess.OpenStream()
			if err != nil {
				if sess.IsClosed() {
					continue // it went away just now; wait for the next one
				}
				r.obs.StreamOpened(h.Service, err)
				return nil, fmt.Errorf("tunnel: open stream: %w", err)
			}
			if err := handshake(ctx, stream, h); err != nil {
				stream.Close()
				r.obs.StreamOpened(h.Service, err)
				return nil, err
			}
			r.obs.StreamOpened(h.Service, nil)
			return stream, nil
		}
		if r.holders != nil {
			conn, err := r.dialRelayed(ctx, environmentID, h)
			var refused *RefusedError
			switch {
			case err == nil:
				r.obs.StreamOpened(h.Service, nil)
				return conn, nil
			case errors.As(err, &refused):
				// The supervisor answered: its answer is the caller's.
				r.obs.StreamOpened(h.Service, err)
				return nil, err
			case !errors.Is(err, ErrNoHolder):
				// The holder died or lost the tunnel just now; the
				// supervisor redials some replica, which the next look
				// finds.
				relayErr = err
			}
		}
		if err := r.sleep(ctx, wake); err != nil {
			if relayErr != nil {
				err = fmt.Errorf("%w (through the replica holding it: %w)", err, relayErr)
			}
			r.obs.StreamOpened(h.Service, err)
			return nil, err
		}
	}
}

// Await returns once environmentID's supervisor is connected (here, or with
// Holders at a live other replica), or an error wrapping ErrNotConnected
// when ctx ends first.
func (r *Registry) Await(ctx context.Context, environmentID string) error {
	return r.await(ctx, environmentID, time.Time{})
}

// AwaitSince returns once environmentID's supervisor is connected by a
// tunnel that arrived at or after since (here, or with Holders at a live
// other replica, by that replica's clock), or an error wrapping
// ErrNotConnected when ctx ends first. A runtime that has just started a
// workspace learns from it that the workspace's supervisor runs, whatever
// tunnel an earlier run of it may have left behind.
func (r *Registry) AwaitSince(ctx context.Context, environmentID string, since time.Time) error {
	return r.await(ctx, environmentID, since)
}

func (r *Registry) await(ctx context.Context, environmentID string, since time.Time) error {
	for {
		sess, wake := r.lookup(environmentID, since)
		if sess != nil || r.heldElsewhere(ctx, environmentID, since) {
			return nil
		}
		if err := r.sleep(ctx, wake); err != nil {
			return err
		}
	}
}

// lookup returns environmentID's live local session that arrived at or
// after since or, when there is none, a channel closed when one arrives.
// Both are taken under one lock, so an arrival right after the look is
// never missed.
func (r *Registry) lookup(environmentID string, since time.Time) (*yamux.Session, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sess := r.sessions[environmentID]
	if sess != nil && !sess.IsClosed() && !r.since[environmentID].Before(since) {
		return sess, nil
	}
	wait := r.changed[environmentID]
	if wait == nil {
		wait = make(chan struct{})
		r.changed[environmentID] = wait
	}
	return nil, wait
}

// sleep waits for a local session to arrive (wake), or with Holders for
// the time to ask them again, or for ctx to end: then it returns an error
// wrapping ErrNotConnected.
func (r *Registry) sleep(ctx context.Context, wake <-chan struct{}) error {
	var poll <-chan time.Time
	if r.holders != nil {
		t := time.NewTimer(r.holderPoll)
		defer t.Stop()
		poll = t.C
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	case <-wake:
	case <-poll:
	}
	return nil
}

// handshake sends the header and reads the reply, bounded by ctx.
func handshake(ctx context.Context, stream net.Conn, h Header) error {
	if d, ok := ctx.Deadline(); ok {
		_ = stream.SetDeadline(d)
		defer stream.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = stream.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := WriteHeader(stream, h); err != nil {
		return fmt.Errorf("tunnel: send header: %w", err)
	}
	if err := ReadReply(stream); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tunnel: %w", ctx.Err())
		}
		return err
	}
	return nil
}

// joinBuffer is the size of Join's copy buffers, pooled: an idle connection
// holds none once its copies end.
const joinBuffer = 256 << 10

var joinBuffers = sync.Pool{New: func() any { b := make([]byte, joinBuffer); return &b }}

// Join copies between a and b until both directions are done, then closes
// both. Each direction's end is passed on as a half-close where the
// connection supports it, so protocols that finish writing first (an scp
// upload) still get their answer.
//
// Each direction copies through a joinBuffer: a read returns what has
// arrived, and each write is one websocket message or one yamux frame, so
// a bulk copy (scp) costs fewer of them than with io.Copy's 32 KiB.
func Join(a, b io.ReadWriteCloser) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src io.ReadWriteCloser) {
		defer wg.Done()
		buf := joinBuffers.Get().(*[]byte)
		defer joinBuffers.Put(buf)
		// The struct wrappers keep io.CopyBuffer from bypassing buf
		// through a ReaderFrom or WriterTo (a *net.TCPConn has both).
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// Package liveconn keeps the registry of long-lived connections people hold
// open with a credential: web terminals, SSH sessions, port-forwards,
// event streams and the IDE's websockets. A request is authenticated once,
// when it starts; such a connection then lives for hours. So whatever
// revokes a credential (a logout, a revoked session or token, a password
// change) or changes what its user may do (suspension, a role change) also
// ends, through this registry, the connections opened with it, at once.
//
// Each connection also carries a check of its credential against the
// store. It runs once right after the connection is registered, which
// closes the gap between a request's authentication and its registration
// (a revocation in between would otherwise miss it), and then on every
// sweep (Run), which catches what no code path here revoked: a session
// that expired, or a revocation made by another server of the
// installation.
package liveconn

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ErrRevoked is the cause (context.Cause) with which a tracked
// connection's context ends when its credential is revoked.
var ErrRevoked = errors.New("the credential this connection was opened with was revoked, or its user may no longer use it")

// ErrUnavailable is what a Check wraps when it could not tell (the store
// failed): Sweep then keeps the connection.
var ErrUnavailable = errors.New("the credential could not be checked")

// DefaultSweepInterval is how often Run checks every connection's
// credential against the store.
const DefaultSweepInterval = time.Minute

// checkTimeout bounds one credential check of a sweep.
const checkTimeout = 10 * time.Second

const (
	sessionPrefix = "session:"
	tokenPrefix   = "token:"
)

// Session names a session as a credential.
func Session(id string) string { return sessionPrefix + id }

// Token names an API token as a credential.
func Token(id string) string { return tokenPrefix + id }

// IsSession reports whether credential names a session.
func IsSession(credential string) bool { return strings.HasPrefix(credential, sessionPrefix) }

// Holder is whose credential a connection was opened with.
type Holder struct {
	UserID string
	// Credential names the session or API token (Session, Token).
	Credential string
	// Check returns an error when the credential no longer allows the
	// connection (revoked, expired, its user suspended or given another
	// role). Nil: nothing is checked.
	Check func(ctx context.Context) error
}

type entry struct {
	holder Holder
	cancel context.CancelCauseFunc
}

// Registry is the set of live connections. Its zero value is not usable;
// call New. It is safe for concurrent use.
type Registry struct {
	log   *slog.Logger
	mu    sync.Mutex
	next  uint64
	conns map[uint64]*entry
}

// New returns an empty Registry.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	return &Registry{log: log, conns: map[uint64]*entry{}}
}

// Track registers a connection held with h's credential and checks the
// credential at once. The connection must run under the returned context,
// which ends (cause ErrRevoked) when the credential is revoked, and call
// done when it ends. If h's check fails now, the context has ended already
// and the error says why.
func (r *Registry) Track(ctx context.Context, h Holder) (_ context.Context, done func(), err error) {
	ctx, cancel, done := r.register(ctx, h)
	// Checked after registering: a revocation before this check is seen
	// by it, one after it finds the connection registered.
	if h.Check != nil {
		if err := h.Check(ctx); err != nil {
			cancel(ErrRevoked)
			return ctx, done, err
		}
	}
	return ctx, done, nil
}

// Register is Track without the check at once, for a request whose
// credential was checked a moment before and which is seldom long-lived (a
// workspace app's proxied request): a revocation between that check and
// the registration is caught by the next sweep.
func (r *Registry) Register(ctx context.Context, h Holder) (_ context.Context, done func()) {
	ctx, _, done = r.register(ctx, h)
	return ctx, done
}

func (r *Registry) register(ctx context.Context, h Holder) (context.Context, context.CancelCauseFunc, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	r.mu.Lock()
	r.next++
	id := r.next
	r.conns[id] = &entry{holder: h, cancel: cancel}
	r.mu.Unlock()
	return ctx, cancel, func() {
		r.mu.Lock()
		delete(r.conns, id)
		r.mu.Unlock()
		cancel(context.Canceled)
	}
}

// Revoke ends every connection whose holder match accepts and says how
// many it ended.
func (r *Registry) Revoke(match func(Holder) bool) int {
	r.mu.Lock()
	var ended []*entry
	for id, e := range r.conns {
		if match(e.holder) {
			ended = append(ended, e)
			delete(r.conns, id)
		}
	}
	r.mu.Unlock()
	for _, e := range ended {
		e.cancel(ErrRevoked)
	}
	return len(ended)
}

// RevokeCredential ends the connections opened with credential.
func (r *Registry) RevokeCredential(credential string) int {
	return r.Revoke(func(h Holder) bool { return h.Credential == credential })
}

// RevokeUser ends every connection of userID, whatever its credential.
func (r *Registry) RevokeUser(userID string) int {
	return r.Revoke(func(h Holder) bool { return h.UserID == userID })
}

// Len is how many connections are registered.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// Sweep checks every connection's credential and ends those whose check
// fails, saying how many it ended. A check that cannot run (the store does
// not answer) keeps its connection: the next sweep asks again.
func (r *Registry) Sweep(ctx context.Context) int {
	r.mu.Lock()
	ids := make([]uint64, 0, len(r.conns))
	for id := range r.conns {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	ended := 0
	for _, id := range ids {
		r.mu.Lock()
		e := r.conns[id]
		r.mu.Unlock()
		if e == nil || e.holder.Check == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := e.holder.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return ended
		}
		if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
			continue
		}
		r.mu.Lock()
		_, still := r.conns[id]
		delete(r.conns, id)
		r.mu.Unlock()
		if still {
			e.cancel(ErrRevoked)
			ended++
		}
	}
	return ended
}

// Run sweeps every interval (default DefaultSweepInterval) until ctx ends.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := r.Sweep(ctx); n > 0 {
			r.log.Info("ended connections whose credential no longer holds", "connections", n)
		}
	}
}

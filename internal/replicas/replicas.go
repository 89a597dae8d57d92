// Package replicas lets several dev8 server replicas on one database serve
// as one: each registers itself (its address, a heartbeat) in the store and
// notes there which workspace tunnels it holds, and a replica asked for a
// stream to a workspace whose supervisor is connected elsewhere relays it
// through the replica that holds the tunnel, over an authenticated
// replica-to-replica connection. It implements tunnel.Holders, and serves
// the relay endpoint the other replicas dial (RelayHandler).
package replicas

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// Store is what the registry keeps in the database (store.DB implements
// it).
type Store interface {
	RegisterReplica(ctx context.Context, r store.Replica) (store.Replica, error)
	HeartbeatReplica(ctx context.Context, id string, at time.Time) error
	DeleteReplica(ctx context.Context, id string) error
	DeleteReplicasBefore(ctx context.Context, before time.Time) (int64, error)
	SetReplicaDraining(ctx context.Context, id string, draining bool) error
	SetTunnelHolder(ctx context.Context, environmentID, replicaID string, since time.Time) error
	DeleteTunnelHolder(ctx context.Context, environmentID, replicaID string, since time.Time) (bool, error)
	GetTunnelHolder(ctx context.Context, environmentID string) (store.TunnelHolder, error)
	CountTunnelHolders(ctx context.Context, replicaID string) (int, error)
	ListReplicas(ctx context.Context) ([]store.Replica, error)
}

// Defaults.
const (
	// DefaultHeartbeat is how often a replica renews its registration.
	DefaultHeartbeat = 3 * time.Second
	// deadAfterBeats: a replica whose heartbeat is older than this many
	// intervals is dead to the others (its tunnels are not dialed).
	deadAfterBeats = 4
	// pruneAfter: a dead replica's row, and the tunnels noted as its,
	// are deleted this long after its last heartbeat.
	pruneAfter = 10 * time.Minute
	// dialTimeout bounds opening a relay connection to another replica:
	// a replica that does not answer within it is as good as dead.
	dialTimeout = 5 * time.Second
	// storeTimeout bounds the registry's own writes at shutdown.
	storeTimeout = 5 * time.Second
)

// Config configures a replica.
type Config struct {
	Store Store
	// ID names this replica (default: a new random one). The server gives
	// the name its leases are held under, so one name means one replica
	// everywhere.
	ID string
	// URL is where the other replicas reach this one: http(s)://host:port.
	URL string
	// Key signs and checks relay credentials; every replica of the
	// installation must have the same one (at least 32 bytes).
	Key []byte
	// Local lists the tunnels this replica holds (tunnel.Registry.Local):
	// they are noted again should the replica's registration be lost
	// (pruned while it could not reach the database).
	Local func() map[string]time.Time
	// HTTPClient dials the other replicas (default: one that follows no
	// redirects, so a credential goes only where it was meant for).
	HTTPClient *http.Client
	// Heartbeat is how often the registration is renewed (default
	// DefaultHeartbeat); a replica silent for 4 of them is dead.
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Now is the clock (default time.Now): real time, as the other
	// replicas read it.
	Now func() time.Time
}

// Replica is this server among the replicas.
type Replica struct {
	cfg       Config
	id        string
	startedAt time.Time
	tokens    tokens
	deadAfter time.Duration
	log       *slog.Logger
	// draining: this replica is shutting down (Drain); a registration
	// made again says so too.
	draining atomic.Bool
}

var _ tunnel.Holders = (*Replica)(nil)

// New returns this server's replica (with a new random id unless
// cfg.ID names it); Register announces it.
func New(cfg Config) (*Replica, error) {
	if len(cfg.Key) < minKeySize {
		return nil, fmt.Errorf("replicas: the relay key must be at least %d bytes", minKeySize)
	}
	u, err := CheckURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg.URL = u
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Local == nil {
		cfg.Local = func() map[string]time.Time { return nil }
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	id := cfg.ID
	if id == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("replicas: id: %w", err)
		}
		id = "rep_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	}
	return &Replica{cfg: cfg, id: id, tokens: tokens{key: cfg.Key}, deadAfter: deadAfterBeats * cfg.Heartbeat,
		log: cfg.Logger.With("replica", id)}, nil
}

// CheckURL checks a replica URL, http(s)://host[:port] with nothing
// after it, and returns it without a trailing slash.
func CheckURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("replica URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("replica URL %q: must be http:// or https://", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("replica URL %q: no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("replica URL %q: only scheme, host and port (the relay's path is the server's own)", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Beating returns those of others that are heard beating: whose
// heartbeat moves within one and a half heartbeat intervals. A replica
// that was just killed (its last heartbeat still fresh) is not: this tells
// a server restarted after a crash from one beside a live replica.
func (r *Replica) Beating(ctx context.Context, others []store.Replica) ([]store.Replica, error) {
	t := time.NewTimer(r.cfg.Heartbeat + r.cfg.Heartbeat/2)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	now, err := r.cfg.Store.ListReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("replicas: list: %w", err)
	}
	var out []store.Replica
	for _, o := range others {
		for _, n := range now {
			if n.ID == o.ID && n.HeartbeatAt.After(o.HeartbeatAt) {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// LiveOthers lists the other replicas whose heartbeat is fresh.
func (r *Replica) LiveOthers(ctx context.Context) ([]store.Replica, error) {
	all, err := r.cfg.Store.ListReplicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("replicas: list: %w", err)
	}
	var out []store.Replica
	for _, o := range all {
		if o.ID != r.id && r.cfg.Now().Sub(o.HeartbeatAt) < r.deadAfter {
			out = append(out, o)
		}
	}
	return out, nil
}

// ID is this replica's id.
func (r *Replica) ID() string { return r.id }

// URL is where the other replicas reach this one.
func (r *Replica) URL() string { return r.cfg.URL }

// Register announces this replica: call it before the server takes
// tunnels, which are noted as this replica's.
func (r *Replica) Register(ctx context.Context) error {
	now := r.cfg.Now()
	if r.startedAt.IsZero() {
		r.startedAt = now
	}
	if _, err := r.cfg.Store.RegisterReplica(ctx, store.Replica{ID: r.id, URL: r.cfg.URL, StartedAt: r.startedAt, HeartbeatAt: now, Draining: r.draining.Load()}); err != nil {
		return fmt.Errorf("replicas: register: %w", err)
	}
	r.log.Info("replica registered", "url", r.cfg.URL)
	return nil
}

// Drain notes in the registry that this replica is shutting down (its
// Draining): a replica stopping at the same time does not wait for its
// supervisors to move here.
func (r *Replica) Drain(ctx context.Context) error {
	r.draining.Store(true)
	if err := r.cfg.Store.SetReplicaDraining(ctx, r.id, true); err != nil {
		return fmt.Errorf("replicas: note draining: %w", err)
	}
	return nil
}

// Run renews the registration until ctx ends, prunes replicas dead for
// long, and then deletes the registration, and with it every tunnel noted
// as this replica's (the server is shutting down; its supervisors redial
// another replica).
func (r *Replica) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			defer cancel()
			if err := r.cfg.Store.DeleteReplica(dctx, r.id); err != nil {
				r.log.Warn("replicas: deregister; the others will find this replica dead in a few seconds", "err", err)
			}
			return nil
		case <-t.C:
			r.beat(ctx)
		}
	}
}

// beat renews the registration once. A registration that is gone (pruned
// while this replica could not reach the database) is made again, with
// the tunnels this replica holds.
func (r *Replica) beat(ctx context.Context) {
	now := r.cfg.Now()
	err := r.cfg.Store.HeartbeatReplica(ctx, r.id, now)
	if errors.Is(err, store.ErrNotFound) {
		r.log.Warn("replicas: this replica's registration was gone (it was taken for dead); registering again")
		if err = r.Register(ctx); err == nil {
			for env, since := range r.cfg.Local() {
				if err := r.Record(ctx, env, since); err != nil {
					r.log.Warn("replicas: note a tunnel again", "environment", env, "err", err)
				}
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("replicas: heartbeat", "err", err)
		}
		return
	}
	if n, err := r.cfg.Store.DeleteReplicasBefore(ctx, now.Add(-pruneAfter)); err != nil && ctx.Err() == nil {
		r.log.Warn("replicas: prune dead replicas", "err", err)
	} else if n > 0 {
		r.log.Info("replicas: pruned dead replicas", "count", n)
	}
}

// Record notes that this replica holds environmentID's tunnel from since
// (tunnel.Holders).
func (r *Replica) Record(ctx context.Context, environmentID string, since time.Time) error {
	return r.cfg.Store.SetTunnelHolder(ctx, environmentID, r.id, since)
}

// Forget removes the note of this replica's tunnel from since, unless a
// newer one replaced it (tunnel.Holders).
func (r *Replica) Forget(ctx context.Context, environmentID string, since time.Time) error {
	_, err := r.cfg.Store.DeleteTunnelHolder(ctx, environmentID, r.id, since)
	return err
}

// holder returns the live replica other than this one holding
// environmentID's tunnel, or ErrNoHolder.
func (r *Replica) holder(ctx context.Context, environmentID string) (store.TunnelHolder, error) {
	h, err := r.cfg.Store.GetTunnelHolder(ctx, environmentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h, tunnel.ErrNoHolder
	case err != nil:
		return h, err
	case h.Replica.ID == r.id:
		// A note of this replica's own that outlived its tunnel: the
		// tunnel is not here, so nobody has it.
		return h, tunnel.ErrNoHolder
	case r.cfg.Now().Sub(h.Replica.HeartbeatAt) >= r.deadAfter:
		return h, tunnel.ErrNoHolder
	}
	return h, nil
}

// HeldHere counts the tunnels noted as this replica's (tunnel.Holders).
func (r *Replica) HeldHere(ctx context.Context) (int, error) {
	return r.cfg.Store.CountTunnelHolders(ctx, r.id)
}

// Held reports whether a live other replica holds environmentID's tunnel
// by a connection that arrived at or after since (tunnel.Holders).
func (r *Replica) Held(ctx context.Context, environmentID string, since time.Time) (bool, error) {
	h, err := r.holder(ctx, environmentID)
	if errors.Is(err, tunnel.ErrNoHolder) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !h.Since.Before(since.Truncate(time.Microsecond)), nil
}

// DialHolder opens a relay connection to the live replica holding
// environmentID's tunnel (tunnel.Holders): a websocket to its RelayPath
// with a credential for that replica and environment.
func (r *Replica) DialHolder(ctx context.Context, environmentID string) (net.Conn, error) {
	h, err := r.holder(ctx, environmentID)
	if err != nil {
		return nil, err
	}
	token := r.tokens.issue(h.Replica.ID, environmentID, r.cfg.Now().Add(tokenTTL))
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, h.Replica.URL+RelayPath(environmentID), &websocket.DialOptions{
		HTTPClient: r.cfg.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		// The error names the URL, never the credential.
		if resp != nil {
			return nil, fmt.Errorf("replicas: relay to replica %s: HTTP %d", h.Replica.ID, resp.StatusCode)
		}
		return nil, fmt.Errorf("replicas: relay to replica %s: %w", h.Replica.ID, err)
	}
	// The relay lives as long as its stream, not as the dial's context.
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
}

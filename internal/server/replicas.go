package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"dev8.dev/dev8/internal/replicas"
	"dev8.dev/dev8/internal/store"
)

// Replicas. Several servers on one PostgreSQL database serve as one
// behind a load balancer: a workspace's supervisor holds its tunnel with
// whichever replica it reached, and a stream asked of another replica
// (SSH, a terminal, the IDE, a forwarded port, a snapshot) is relayed
// through the one holding it (internal/replicas). Every server registers,
// the one on SQLite too: one code path, and its registration costs a
// heartbeat every few seconds.

// The relay credentials' key: an installation key, the same for every
// replica (they share the store and the secret key that seals it).
const (
	relayKeyName = "replica-relay-key"
	relayKeySize = 32
	// registerTimeout bounds the registration at start.
	registerTimeout = 30 * time.Second
)

// startReplica registers this server among the replicas and makes its
// tunnel registry relay what it does not hold. addr is the listener's.
func (s *Server) startReplica(ctx context.Context, addr net.Addr) (*replicas.Replica, error) {
	u := s.cfg.ReplicaURL
	if u == "" {
		scheme := "http"
		if s.tlsConfig != nil {
			scheme = "https"
		}
		u = urlsFor(scheme, addr, "", "").AgentURL
	}
	r, err := replicas.New(replicas.Config{
		ID:         s.replicaID,
		Store:      s.Store,
		URL:        u,
		Key:        s.relayKey,
		Local:      s.Tunnels.Local,
		HTTPClient: relayClient(s.tlsConfig),
		Logger:     s.log,
	})
	if err != nil {
		return nil, err
	}
	if err := s.refuseHostBoundWithReplicas(ctx, r); err != nil {
		return nil, err
	}
	s.Tunnels.SetHolders(r, 0)
	// Even when Serve's context has ended already (a server stopped as it
	// starts): Run then deregisters at once.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registerTimeout)
	defer cancel()
	if err := r.Register(rctx); err != nil {
		return nil, fmt.Errorf("register this server among the replicas: %w", err)
	}
	return r, nil
}

// withRelay serves the other replicas' relays (replicas.RelayPrefix on the
// server's own hosts, not workspace apps' origins) before anything of the
// API: they carry no person's credentials, only a replica's.
func (s *Server) withRelay(r *replicas.Replica, next http.Handler) http.Handler {
	relay := r.RelayHandler(s.Tunnels)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, replicas.RelayPrefix) && !s.api.IsAppHost(req.Host) {
			relay.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// relayClient dials the other replicas. Over HTTPS their certificates
// must verify against the system's roots or this server's own certificate
// (replicas sharing one), for the host of their replica URL: a relay
// credential goes only to a replica that proves it is one. Redirects are
// not followed, so it goes nowhere else either.
func relayClient(own *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if own != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, c := range own.Certificates {
			for _, der := range c.Certificate {
				if cert, err := x509.ParseCertificate(der); err == nil {
					pool.AddCert(cert)
				}
			}
		}
		// HTTP/1.1: a relay is a websocket.
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
		tr.ForceAttemptHTTP2 = false
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// peerChanges takes the other replicas' environment changes (replicaevents)
// to this replica's subscribers, and drops a tunnel this replica holds for
// an environment another replica stopped, deleted or failed: its agent
// token was revoked there (lifecycle.Config.AgentRevoked drops only the
// revoking replica's tunnels), and its supervisor must not keep a tunnel
// here.
type peerChanges struct {
	s *Server
}

func (p peerChanges) PublishFromReplica(env store.Environment) {
	p.s.Manager.PublishFromReplica(env)
	// Not while it stops: the pre-stop snapshot goes through the tunnel.
	if env.DeletedAt != nil || env.Status == store.StatusStopped || env.Status == store.StatusError {
		p.s.Tunnels.Disconnect(env.ID) // nothing when it holds none
	}
}

// refuseHostBoundWithReplicas refuses to start beside other live replicas
// when environments on the local runtime exist: a local workspace is a
// process of the server that started it, which another replica would find
// missing and fail. (Its own previous run, killed a moment ago, is not
// such a replica: it no longer beats.) A server that only offers the
// local runtime beside other replicas is warned about.
func (s *Server) refuseHostBoundWithReplicas(ctx context.Context, r *replicas.Replica) error {
	// On SQLite this server is alone (the data directory's lock): what
	// the registry holds besides it is a previous run's.
	if _, local := s.Runtimes["local"]; !local || s.Store.Engine() != "postgres" {
		return nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registerTimeout)
	defer cancel()
	others, err := r.LiveOthers(lctx)
	if err != nil || len(others) == 0 {
		return err
	}
	used, err := s.Store.EnvironmentRuntimes(lctx)
	if err != nil {
		return err
	}
	if !slices.Contains(used, "local") {
		s.log.Warn("another replica runs on this database, and this server offers the local runtime, whose workspaces belong to the server that starts them: "+
			"the other replicas would find them missing; run replicas with docker (one engine), kubernetes or azure", "replica", others[0].ID)
		return nil
	}
	beating, err := r.Beating(lctx, others)
	if err != nil || len(beating) == 0 {
		return err
	}
	return fmt.Errorf("another replica runs on this database (%s at %s), and environments on the local runtime exist, whose workspaces belong to the one server that started them: "+
		"replicas need workspaces every replica reaches (docker with one engine, kubernetes or azure); stop the other replica, or delete the local environments first",
		beating[0].ID, beating[0].URL)
}

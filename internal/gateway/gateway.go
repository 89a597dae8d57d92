// Package gateway is the part of the server that carries traffic to and
// from workspaces: the tunnel endpoint supervisors dial in to, workspace
// apps (the IDE, HTTP servers on workspaces' ports) served on their own
// origins with the sign-in to them (apps.go), the IDE's activity reports,
// the path-based IDE under /w/{id}/ide/ that only --unsafe-path-based-apps
// turns on, and the SSH, terminal and port-forward websocket bridges.
// Every connection runs through the tunnel registry of the server a
// workspace's supervisor is connected to, which is why it is apart from the
// API: with several replicas, this is what has to be routed to the right
// one.
//
// The handlers expect the routes' middleware (httpmw) to have
// authenticated the caller and loaded {id} (httpmw.Environment).
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"dev8.dev/dev8/internal/appauth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/tunnel"
)

// ActivityRecorder records that a person used a workspace (the lifecycle
// manager: it postpones the auto-stop).
type ActivityRecorder interface {
	Touch(ctx context.Context, environmentID string) error
}

// Config configures a Gateway.
type Config struct {
	// Tunnels holds the supervisors' connections.
	Tunnels *tunnel.Registry
	// Activity records IDE use.
	Activity ActivityRecorder
	Logger   *slog.Logger
	// IDEActivityInterval is how often at most an IDE tab in use reports
	// (default DefaultIDEActivityInterval).
	IDEActivityInterval time.Duration
	// IDEPage, if set, answers a browser navigating to an IDE that cannot
	// be shown (httpmw.Pages.IDEUnavailable) instead of a JSON error.
	IDEPage func(w http.ResponseWriter, r *http.Request, problem error)
	// AppPage, if set, renders Dev8's pages on workspace apps' own origins
	// (httpmw.Pages.AppPage): a browser there gets them instead of JSON.
	AppPage func(w http.ResponseWriter, r *http.Request, status int, p httpmw.AppPage)
	// Tickets and AppSessions sign browsers in to apps' origins (see
	// appauth): a redeemed ticket becomes a session cookie.
	Tickets     *appauth.Tickets
	AppSessions *appauth.Sessions
	// DashboardURL is where people reach the dashboard (the access URL),
	// for links and redirects from apps' origins back to it.
	DashboardURL func(r *http.Request) string
}

// Gateway serves the workspace connections.
type Gateway struct {
	tunnels             *tunnel.Registry
	activity            ActivityRecorder
	log                 *slog.Logger
	ideActivityInterval time.Duration
	transport           *http.Transport
	proxy               http.Handler
	idePage             func(w http.ResponseWriter, r *http.Request, problem error)
	appPage             func(w http.ResponseWriter, r *http.Request, status int, p httpmw.AppPage)
	tickets             *appauth.Tickets
	appSessions         *appauth.Sessions
	dashboardURL        func(r *http.Request) string
}

// New returns the gateway for cfg.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IDEActivityInterval <= 0 {
		cfg.IDEActivityInterval = DefaultIDEActivityInterval
	}
	g := &Gateway{
		tunnels:             cfg.Tunnels,
		activity:            cfg.Activity,
		log:                 cfg.Logger,
		ideActivityInterval: cfg.IDEActivityInterval,
		idePage:             cfg.IDEPage,
		appPage:             cfg.AppPage,
		tickets:             cfg.Tickets,
		appSessions:         cfg.AppSessions,
		dashboardURL:        cfg.DashboardURL,
	}
	if g.dashboardURL == nil {
		g.dashboardURL = func(*http.Request) string { return "" }
	}
	g.transport = g.newTransport()
	g.proxy = g.newProxy()
	return g
}

func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(g.log, w, r, err)
}

package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"
)

// AgentConfig configures the supervisor's end of the tunnel.
type AgentConfig struct {
	// ServerURL is the server's base URL as seen from the workspace.
	ServerURL     string
	EnvironmentID string
	Token         string
	Handler       Handler
	Logger        *slog.Logger
	// HTTPClient dials the websocket (default http.DefaultClient).
	HTTPClient *http.Client
	// Connected, if set, is called each time the tunnel comes up.
	Connected func()
	// MinBackoff and MaxBackoff bound the delay between reconnects
	// (default 100ms and 5s). The delay doubles from MinBackoff, random
	// within each step so that many supervisors losing one server do not
	// redial it in lockstep (see backoff).
	MinBackoff, MaxBackoff time.Duration
}

// Path is where a supervisor dials its tunnel.
func Path(environmentID string) string {
	return "/api/v1/environments/" + environmentID + "/tunnel"
}

// Connect keeps the supervisor's tunnel up until ctx ends: it dials the
// server, serves streams until the connection drops (the server restarted),
// and dials again with backoff. Streams already being served are left
// alone when the connection drops; they end with it.
func Connect(ctx context.Context, cfg AgentConfig) error {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	url := strings.TrimRight(cfg.ServerURL, "/") + Path(cfg.EnvironmentID)
	delays := newBackoff(cfg.MinBackoff, cfg.MaxBackoff)
	for {
		up, err := connectOnce(ctx, cfg, url)
		if ctx.Err() != nil {
			return nil
		}
		if up {
			delays.reset() // it worked for a while: reconnect fast
		}
		delay := delays.next()
		cfg.Logger.Warn("tunnel down; reconnecting", "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connectOnce runs one connection; up reports whether it was established.
func connectOnce(ctx context.Context, cfg AgentConfig, url string) (up bool, err error) {
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, resp, err := websocket.Dial(dialCtx, url, &websocket.DialOptions{
		HTTPClient: cfg.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + cfg.Token}},
	})
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound) {
			return false, fmt.Errorf("server refused the tunnel (HTTP %d): %w", resp.StatusCode, err)
		}
		return false, fmt.Errorf("dial %s: %w", url, err)
	}
	connCtx, stop := context.WithCancel(ctx)
	defer stop()
	conn := websocket.NetConn(connCtx, ws, websocket.MessageBinary)
	sess, err := yamux.Server(newFrameConn(conn), yamuxConfig(cfg.Logger))
	if err != nil {
		conn.Close()
		return false, fmt.Errorf("start session: %w", err)
	}
	defer sess.Close()
	cfg.Logger.Info("tunnel up", "server", cfg.ServerURL)
	if cfg.Connected != nil {
		cfg.Connected()
	}
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, yamux.ErrSessionShutdown) {
				return true, errors.New("connection closed")
			}
			return true, fmt.Errorf("accept stream: %w", err)
		}
		go serveStream(ctx, cfg, stream)
	}
}

func serveStream(ctx context.Context, cfg AgentConfig, stream *yamux.Stream) {
	_ = stream.SetReadDeadline(time.Now().Add(30 * time.Second))
	h, err := ReadHeader(stream)
	if err != nil {
		cfg.Logger.Warn("bad tunnel stream", "err", err)
		stream.Close()
		return
	}
	_ = stream.SetReadDeadline(time.Time{})
	cfg.Handler.ServeStream(ctx, h, stream)
}

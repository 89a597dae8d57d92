package supervisor

import (
	"context"
	"net"
	"net/http"
	"time"
)

// agentClient is the HTTP client for every request to the server (the
// tunnel, the manifest, usage and activity reports). With AgentSocket set it
// dials that unix socket whatever the URL names: the workspace then has no
// network path to the server at all (see runtime.Spec.AgentSocket), and the
// server answers only the supervisor's routes there.
func (c Config) agentClient() *http.Client {
	if c.AgentSocket == "" {
		return &http.Client{}
	}
	socket := c.AgentSocket
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		// TLS is for the network: the socket is a file on this host.
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: time.Minute,
	}}
}

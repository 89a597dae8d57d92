package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"dev8.dev/dev8/internal/agentapi"
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

// loadAgentTokenFile reads the agent token from the file EnvAgentTokenFile
// names, when EnvAgentToken is empty, into EnvAgentToken (this process's
// environment only: children do not get DEV8_* variables), and removes the
// file (when it may) so nothing in the workspace finds it later. A missing
// file leaves the token empty.
func loadAgentTokenFile() error {
	path := os.Getenv(agentapi.EnvAgentTokenFile)
	if path == "" || os.Getenv(agentapi.EnvAgentToken) != "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Started again without Dev8 (docker start): the last token went
		// with the last start. Main runs unconnected then.
		return nil
	}
	if err != nil {
		return fmt.Errorf("supervisor: agent token: %w", err)
	}
	// Best effort: a supervisor that never was root (a container started
	// as its user) cannot remove root's directory's files, and its
	// workspace runs as the same user anyway.
	_ = os.Remove(path)
	return os.Setenv(agentapi.EnvAgentToken, strings.TrimSpace(string(b)))
}

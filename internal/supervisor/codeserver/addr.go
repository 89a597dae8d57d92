package codeserver

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
)

// Code-server's address (DEV8_CODE_SERVER_ADDR) is either host:port, or a
// unix socket: "unix:/path" (or just an absolute path). Workspaces that share
// one network namespace (the docker runtime's host networking) each get their
// own socket file instead of fighting over a port; code-server then listens
// with --socket and the IDE stream and health checks dial the file.

// unixSocket returns the socket path addr names, if it names one.
func unixSocket(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return p, true
	}
	if strings.HasPrefix(addr, "/") {
		return addr, true
	}
	return "", false
}

// DialTarget is the network and address net.Dial takes for addr.
func DialTarget(addr string) (network, address string) {
	if p, ok := unixSocket(addr); ok {
		return "unix", p
	}
	return "tcp", addr
}

// httpHost is the host part of an http:// URL for addr: the address
// itself, or a placeholder when the transport dials a socket.
func httpHost(addr string) string {
	if _, ok := unixSocket(addr); ok {
		return "code-server"
	}
	return addr
}

// dialerFor is an http.Transport DialContext that always dials addr.
func dialerFor(addr string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	network, address := DialTarget(addr)
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}

// listenArgs are code-server's flags for listening on addr.
func listenArgs(addr string) []string {
	if p, ok := unixSocket(addr); ok {
		return []string{"--socket", p}
	}
	return []string{"--bind-addr", addr}
}

// removeStaleSocket removes a socket file a previous code-server left at
// addr (a workspace's file system outlives its processes), so the next one
// can listen there. Anything that is not a socket is left alone.
func removeStaleSocket(addr string) error {
	p, ok := unixSocket(addr)
	if !ok {
		return nil
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return nil
	}
	return os.Remove(p)
}

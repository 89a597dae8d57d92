// Package loopback gives tests (and the benchmarks) HTTP clients that reach
// *.localhost names on loopback, as browsers do: workspace apps are served
// on such names (ide--env-….localhost), and Go's resolver asks DNS for
// them, which does not know them.
package loopback

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
)

// Transport is http.DefaultTransport's clone that dials localhost and every
// name under .localhost at 127.0.0.1 (RFC 6761).
func Transport() *http.Transport {
	var d net.Dialer
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// Client is an HTTP client over Transport with a cookie jar of its own, so
// it follows a workspace app's sign-in (a redirect with a ticket, a cookie,
// a redirect) as a browser does.
func Client() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Transport: Transport(), Jar: jar}
}

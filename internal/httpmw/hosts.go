package httpmw

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/httpapi"
)

// AllowHosts refuses, before routing, a request whose Host header names a
// host the server is not configured for. That is what a DNS-rebinding page
// sends: a site whose name re-resolves to 127.0.0.1 reaches a server on
// loopback with its own name in Host, and the browser treats the answers as
// that site's. A request passes when its Host is
//   - an IP address (a rebinding page cannot have one: its origin is a
//     name);
//   - localhost or a name under .localhost, which browsers resolve to
//     loopback themselves;
//   - the host of one of urls (the access URL people use, the URL
//     supervisors dial).
//
// Anything else is a 421 saying how to configure the name.
func AllowHosts(log *slog.Logger, urls ...string) func(http.Handler) http.Handler {
	return AllowHostsOr(log, nil, urls...)
}

// AllowHostsOr is AllowHosts that also lets through a Host header extra
// accepts (nil: none): the workspace apps' own host names under their
// wildcard domain (see appurl), which are well-formed app labels only.
func AllowHostsOr(log *slog.Logger, extra func(hostport string) bool, urls ...string) func(http.Handler) http.Handler {
	var names []string
	for _, u := range urls {
		if p, err := url.Parse(u); err == nil && p.Hostname() != "" {
			names = append(names, normalHost(p.Hostname()))
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !HostAllowed(r.Host, names) && (extra == nil || !extra(r.Host)) {
				httpapi.WriteError(log, w, r, &httpapi.Error{
					Status:  http.StatusMisdirectedRequest,
					Code:    httpapi.CodeMisdirected,
					Message: "Unknown host",
					Details: fmt.Sprintf("this server does not answer to %q: reach it at its access URL (--access-url), an IP address or localhost", hostOnly(r.Host)),
				})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// HostAllowed says whether a Host header value (host, host:port, [v6]:port)
// passes AllowHosts with the configured host names.
func HostAllowed(hostport string, names []string) bool {
	host := normalHost(hostOnly(hostport))
	if host == "" {
		// HTTP/1.0 without Host: no browser sends that.
		return true
	}
	if net.ParseIP(host) != nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return slices.Contains(names, host)
}

// hostOnly is hostport without its port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// normalHost lower-cases a host name and drops a final dot (example.com.
// names example.com).
func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

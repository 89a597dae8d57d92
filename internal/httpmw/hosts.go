package httpmw

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/httpapi"
)

// Hosts are the host names the server answers to besides IP addresses and
// localhost (see AllowHosts).
type Hosts struct {
	// URLs are the server's own URLs (the access URL people use, the URL
	// supervisors dial): their hosts are served.
	URLs []string
	// Names are more host names (--allowed-hosts): a proxy in front that
	// is reached under several names. ParseAllowedHosts checks them.
	Names []string
	// Extra, if set, lets through a Host header it accepts: the workspace
	// apps' own host names under their wildcard domain (see appurl), which
	// are well-formed app labels only.
	Extra func(hostport string) bool
}

// names is every configured host name, normalized.
func (h Hosts) names() []string {
	var names []string
	for _, u := range h.URLs {
		if p, err := url.Parse(u); err == nil && p.Hostname() != "" {
			names = append(names, normalHost(p.Hostname()))
		}
	}
	for _, n := range h.Names {
		names = append(names, normalHost(n))
	}
	return names
}

// AllowHosts refuses, before routing, a request whose Host header names a
// host the server is not configured for. That is what a DNS-rebinding page
// sends: a site whose name re-resolves to 127.0.0.1 reaches a server on
// loopback with its own name in Host, and the browser treats the answers as
// that site's. A request passes when its Host is
//   - an IP address (a rebinding page cannot have one: its origin is a
//     name);
//   - localhost or a name under .localhost, which browsers resolve to
//     loopback themselves;
//   - the host of one of hosts.URLs, or one of hosts.Names;
//   - one hosts.Extra accepts.
//
// Anything else is a 421 saying how to configure the name.
func AllowHosts(log *slog.Logger, hosts Hosts) func(http.Handler) http.Handler {
	names, extra := hosts.names(), hosts.Extra
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !HostAllowed(r.Host, names) && (extra == nil || !extra(r.Host)) {
				httpapi.WriteError(log, w, r, &httpapi.Error{
					Status:  http.StatusMisdirectedRequest,
					Code:    httpapi.CodeMisdirected,
					Message: "Unknown host",
					Details: fmt.Sprintf("this server does not answer to %q: reach it at its access URL (--access-url), an IP address or localhost, or add the name to --allowed-hosts", hostOnly(r.Host)),
				})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// ParseAllowedHosts parses a comma-separated list of host names (not URLs:
// no scheme, port or path) for Hosts.Names. Wildcards are not taken.
func ParseAllowedHosts(list string) ([]string, error) {
	var out []string
	var errs []error
	for _, h := range strings.Split(list, ",") {
		h = normalHost(strings.TrimSpace(h))
		switch {
		case h == "":
			continue
		case strings.Contains(h, "*"):
			errs = append(errs, fmt.Errorf("host %q: wildcards are not supported; list each name", h))
		case net.ParseIP(h) == nil && (len(h) > 253 || !dnsName.MatchString(h)):
			errs = append(errs, fmt.Errorf("host %q: want a host name such as dev8.example.com (no scheme, port or path)", h))
		default:
			out = append(out, h)
		}
	}
	return out, errors.Join(errs...)
}

// dnsName is a host name: dot-separated labels of letters, digits and
// hyphens (RFC 1123), 253 characters at most.
var dnsName = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

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

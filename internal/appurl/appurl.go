// Package appurl names the origins workspace content is served from.
//
// What a workspace serves to a browser — its IDE (code-server) and the
// HTTP servers on its ports — runs the workspace owner's JavaScript. On the
// dashboard's origin that script would act with the visitor's dashboard
// session (an admin's, when an admin opens a member's IDE), so every app
// gets an origin of its own: a host name under a wildcard domain, one label
// per app,
//
//	ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com     the IDE
//	3000--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com    port 3000
//
// the app first, then "--", then the environment's id with its "_" written
// as "-" (host names have no "_"). Browsers keep cookies, storage and
// scripts of different hosts apart, so one app's page reaches neither the
// dashboard's session nor another app's. Locally the domain is
// "localhost": browsers resolve every *.localhost name to loopback
// themselves, so http://ide--env-….localhost:3000 needs no configuration.
package appurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// IDEName is the app part of the IDE's label.
const IDEName = "ide"

// App is one thing a workspace serves to browsers: its IDE, or an HTTP
// server on one of its ports.
type App struct {
	EnvironmentID string
	// Port is the workspace port served; 0 is the IDE.
	Port int
}

// IsIDE reports whether a is the workspace's IDE.
func (a App) IsIDE() bool { return a.Port == 0 }

// Name is the app part of a's label: "ide", or the port number.
func (a App) Name() string {
	if a.IsIDE() {
		return IDEName
	}
	return strconv.Itoa(a.Port)
}

// String names a for people: "VS Code", or "port 3000".
func (a App) String() string {
	if a.IsIDE() {
		return "VS Code"
	}
	return "port " + strconv.Itoa(a.Port)
}

// ParseName reads the app part of a label or a request ("ide", or a port
// number from 1 to 65535 without leading zeros) as a port (0: the IDE).
func ParseName(name string) (port int, ok bool) {
	if name == IDEName {
		return 0, true
	}
	if name == "" || name[0] == '0' || len(name) > 5 {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(name)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return n, true
}

// envIDPrefix starts every environment id (store's newID); its label form
// replaces the "_".
const (
	envIDPrefix    = "env_"
	envLabelPrefix = "env-"
	// maxIDRest bounds what follows the prefix: store's ids have 20
	// characters; a label has room for 63 in all.
	maxIDRest = 40
	separator = "--"
)

// Label is a's host label, and false when a's environment id cannot be
// one (it is not an id the store makes).
func (a App) Label() (string, bool) {
	rest, ok := strings.CutPrefix(a.EnvironmentID, envIDPrefix)
	if !ok || !validIDRest(rest) {
		return "", false
	}
	if _, ok := ParseName(a.Name()); !ok {
		return "", false
	}
	return a.Name() + separator + envLabelPrefix + rest, true
}

// ParseLabel reads a host label made by Label. Anything else — another
// shape, upper case, a port out of range — is not an app.
func ParseLabel(label string) (App, bool) {
	name, env, ok := strings.Cut(label, separator)
	if !ok {
		return App{}, false
	}
	port, ok := ParseName(name)
	if !ok {
		return App{}, false
	}
	rest, ok := strings.CutPrefix(env, envLabelPrefix)
	if !ok || !validIDRest(rest) {
		return App{}, false
	}
	return App{EnvironmentID: envIDPrefix + rest, Port: port}, true
}

// validIDRest: lower-case letters and digits, as the store's ids are.
func validIDRest(s string) bool {
	if s == "" || len(s) > maxIDRest {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Domain is where apps are served: scheme://<label><Suffix>[:port].
type Domain struct {
	scheme string
	// suffix is the wildcard's domain with a leading dot: ".localhost",
	// ".dev8.example.com"; lower case.
	suffix string
	// port is empty for the scheme's default.
	port string
}

// ErrNoDomain: the access URL is an IP address other than loopback, under
// which no host name can be made; the operator must name a wildcard domain.
var ErrNoDomain = errors.New("the access URL is an IP address, under which workspace apps cannot have host names of their own: " +
	"set --wildcard-access-url to a wildcard DNS name that points at this server (e.g. *.dev8.example.com)")

// Resolve is the app domain for a server reached at accessURL. wildcard is
// what --wildcard-access-url says ([scheme://]*.domain[:port]); empty means
// the default: *.localhost on the access URL's port when the access URL is
// on loopback (127.0.0.1, ::1, localhost or a name under .localhost), else
// a subdomain of the access URL's host (*.dev8.example.com for
// https://dev8.example.com). A wildcard without a scheme takes the access
// URL's scheme, and its port unless it names one; one with a scheme has its
// own port (the scheme's default when it names none), as behind a proxy
// that terminates TLS.
func Resolve(accessURL, wildcard string) (Domain, error) {
	access, err := url.Parse(accessURL)
	if err != nil || (access.Scheme != "http" && access.Scheme != "https") || access.Hostname() == "" {
		return Domain{}, fmt.Errorf("access URL %q: want http(s)://host[:port]", accessURL)
	}
	if wildcard != "" {
		w, err := ParseWildcard(wildcard)
		if err != nil {
			return Domain{}, err
		}
		if w.scheme == "" {
			w.scheme = access.Scheme
			if w.port == "" {
				w.port = access.Port()
			}
		}
		return w.normalized(), nil
	}
	d := Domain{scheme: access.Scheme, port: access.Port()}
	host := strings.TrimSuffix(strings.ToLower(access.Hostname()), ".")
	switch ip := net.ParseIP(host); {
	case ip != nil && ip.IsLoopback(), host == "localhost", strings.HasSuffix(host, ".localhost"):
		d.suffix = ".localhost"
	case ip != nil:
		return Domain{}, ErrNoDomain
	default:
		d.suffix = "." + host
	}
	return d.normalized(), nil
}

// ParseWildcard checks --wildcard-access-url: [http(s)://]*.domain[:port],
// the domain a DNS name (not an IP address), nothing after it. Its scheme
// and port stay empty when it names none (Resolve fills them in).
func ParseWildcard(raw string) (Domain, error) {
	bad := func(why string) (Domain, error) {
		return Domain{}, fmt.Errorf("wildcard access URL %q: %s; want [https://]*.domain[:port], such as *.dev8.example.com or https://*.apps.example.com", raw, why)
	}
	rest := strings.TrimSpace(raw)
	var d Domain
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		if scheme = strings.ToLower(scheme); scheme != "http" && scheme != "https" {
			return bad("the scheme must be http or https")
		}
		d.scheme, rest = scheme, after
	}
	rest = strings.TrimSuffix(rest, "/")
	host, ok := strings.CutPrefix(rest, "*.")
	if !ok {
		return bad("it must start with *.")
	}
	if h, p, err := net.SplitHostPort(host); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return bad("the port must be a number from 1 to 65535")
		}
		host, d.port = h, p
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if net.ParseIP(host) != nil || !validDNSName(host) {
		return bad("the domain must be a DNS name")
	}
	d.suffix = "." + host
	return d, nil
}

// validDNSName: labels of letters, digits and hyphens, 1–63 long, not
// starting or ending with a hyphen; 253 characters at most.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// normalized drops a port that is the scheme's default.
func (d Domain) normalized() Domain {
	if (d.scheme == "http" && d.port == "80") || (d.scheme == "https" && d.port == "443") {
		d.port = ""
	}
	return d
}

// IsZero reports whether d is no domain at all (apps cannot be served).
func (d Domain) IsZero() bool { return d.suffix == "" }

// Scheme is "http" or "https".
func (d Domain) Scheme() string { return d.scheme }

// Secure reports whether apps are reached over HTTPS (their cookies are
// then Secure).
func (d Domain) Secure() bool { return d.scheme == "https" }

// Pattern is d as people write it: http://*.localhost:3000.
func (d Domain) Pattern() string { return d.scheme + "://*" + d.suffix + d.portSuffix() }

func (d Domain) portSuffix() string {
	if d.port == "" {
		return ""
	}
	return ":" + d.port
}

// Host is a's host (with the port when it is not the scheme's default), and
// false when a cannot have one (see App.Label).
func (d Domain) Host(a App) (string, bool) {
	label, ok := a.Label()
	if !ok || d.IsZero() {
		return "", false
	}
	return label + d.suffix + d.portSuffix(), true
}

// Origin is a's origin: scheme://host.
func (d Domain) Origin(a App) (string, bool) {
	host, ok := d.Host(a)
	if !ok {
		return "", false
	}
	return d.scheme + "://" + host, true
}

// Match reads the app a Host header (host, host:port) names, if it is a
// well-formed app label directly under d. The port is not compared: behind
// a proxy the server does not listen where browsers connect.
func (d Domain) Match(hostport string) (App, bool) {
	label, ok := d.firstLabel(hostport)
	if !ok {
		return App{}, false
	}
	return ParseLabel(label)
}

// Claims reports whether hostport is for the app server rather than the
// dashboard: a host directly under d whose label has the apps' "--", well
// formed or not (an ill-formed one gets the apps' 404 page, not the
// dashboard).
func (d Domain) Claims(hostport string) bool {
	label, ok := d.firstLabel(hostport)
	return ok && strings.Contains(label, separator)
}

func (d Domain) firstLabel(hostport string) (string, bool) {
	if d.IsZero() {
		return "", false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	label, ok := strings.CutSuffix(host, d.suffix)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}

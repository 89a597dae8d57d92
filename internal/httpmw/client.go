package httpmw

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the reverse proxies whose X-Forwarded-For names the
// client; from anyone else the header is ignored.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes whose X-Forwarded-For is believed.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else {
			errs = append(errs, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix", s))
		}
	}
	return out, errors.Join(errs...)
}

func (t TrustedProxies) isTrusted(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr is the address the request came from: the peer, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right (the entries the proxies appended) to the first address that is not
// itself a trusted proxy. Entries left of it are the client's own word and
// are ignored, or a client could pick its own rate limit key.
func (t TrustedProxies) ClientAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not ip:port (e.g. a test's or a unix socket's RemoteAddr).
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	addr := peer.Addr().Unmap()
	if len(t) == 0 || !t.isTrusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: trust nothing further left
		}
		addr = hop.Unmap()
		if !t.isTrusted(addr) {
			break
		}
	}
	return addr
}

// ClientIP is ClientAddr as text, "" when the request names none.
func (t TrustedProxies) ClientIP(r *http.Request) string {
	if ip := t.ClientAddr(r); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// ClientKey is the rate limit key for r's address. IPv6 clients are keyed
// by their /64, which one subscriber usually holds whole: otherwise each
// request could come from a fresh address.
func (t TrustedProxies) ClientKey(r *http.Request) string {
	a := t.ClientAddr(r)
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

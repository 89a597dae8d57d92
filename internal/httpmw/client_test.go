package httpmw

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7, ::1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8, nonsense"); err == nil {
		t.Error("a bad trusted proxy was accepted")
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies: peer", nil, "203.0.113.5:999", []string{"1.2.3.4"}, "203.0.113.5"},
		{"untrusted peer's header ignored", trusted, "203.0.113.5:999", []string{"1.2.3.4"}, "203.0.113.5"},
		{"trusted proxy", trusted, "10.1.2.3:999", []string{"1.2.3.4"}, "1.2.3.4"},
		{"client's own prefix ignored", trusted, "10.1.2.3:999", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"chain of proxies", trusted, "10.1.2.3:999", []string{"1.2.3.4, 10.9.9.9", "192.0.2.7"}, "1.2.3.4"},
		{"garbage stops the walk", trusted, "10.1.2.3:999", []string{"1.2.3.4, junk, 10.9.9.9"}, "10.9.9.9"},
		{"no header from proxy", trusted, "192.0.2.7:1", nil, "192.0.2.7"},
		{"IPv6 client keyed by /64", trusted, "[::1]:1", []string{"2001:db8:1:2:aaaa::1"}, "2001:db8:1:2::/64"},
		{"IPv4-mapped peer", nil, "[::ffff:203.0.113.9]:5", nil, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			th := TrustedProxies(tc.trusted)
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := th.ClientKey(req); got != tc.want {
				t.Fatalf("client key = %q, want %q", got, tc.want)
			}
		})
	}
}

package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/signup"
)

// Open signup on a listener other machines can reach is said loudly at
// start; on loopback, a unix socket, or under another policy it is not.
func TestWarnOpenSignup(t *testing.T) {
	t.Parallel()
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, tc := range []struct {
		policy signup.Policy
		addr   net.Addr
		warn   bool
	}{
		{signup.Open, tcp("0.0.0.0:3000"), true},
		{signup.Open, tcp("[::]:3000"), true},
		{signup.Open, tcp("192.0.2.10:3000"), true},
		{signup.Open, tcp("127.0.0.1:3000"), false},
		{signup.Open, tcp("[::1]:3000"), false},
		{signup.Open, &net.UnixAddr{Name: "/run/dev8.sock", Net: "unix"}, false},
		{signup.Invite, tcp("0.0.0.0:3000"), false},
		{signup.Closed, tcp("0.0.0.0:3000"), false},
	} {
		var buf bytes.Buffer
		got := warnOpenSignup(slog.New(slog.NewTextHandler(&buf, nil)), tc.policy, tc.addr)
		if got != tc.warn || (buf.Len() > 0) != tc.warn {
			t.Errorf("%s on %s: warned %v (%q), want %v", tc.policy, tc.addr, got, buf.String(), tc.warn)
		}
		if tc.warn && (!strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "SIGNUP IS OPEN") || !strings.Contains(buf.String(), "--signup invite")) {
			t.Errorf("warning %q should be loud and say what to do", buf.String())
		}
	}
}

func TestCheckSignup(t *testing.T) {
	t.Parallel()
	for _, ok := range []struct {
		p signup.Policy
		d []string
	}{{"", nil}, {signup.Open, nil}, {signup.Closed, []string{"example.com", "dev.example.org"}}} {
		if err := checkSignup(ok.p, ok.d); err != nil {
			t.Errorf("checkSignup(%q, %q) = %v", ok.p, ok.d, err)
		}
	}
	for _, bad := range []struct {
		p signup.Policy
		d []string
	}{{"public", nil}, {"Open", nil}, {signup.Invite, []string{"*.example.com"}}, {signup.Invite, []string{"Example.com"}}} {
		if err := checkSignup(bad.p, bad.d); err == nil {
			t.Errorf("checkSignup(%q, %q) accepted it", bad.p, bad.d)
		}
	}
}

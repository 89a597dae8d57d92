package server

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/signup"
)

// checkSignup refuses a signup configuration that cannot be applied, at
// start.
func checkSignup(policy signup.Policy, domains []string) error {
	if policy != "" && !slices.Contains(signup.Policies, policy) {
		return fmt.Errorf("signup policy %q: want open, invite or closed", policy)
	}
	parsed, err := signup.ParseDomains(strings.Join(domains, ","))
	if err != nil {
		return err
	}
	if !slices.Equal(parsed, domains) {
		return fmt.Errorf("allowed email domains %q: want lower-case domains such as example.com", domains)
	}
	return nil
}

// warnOpenSignup says loudly, at start, when anyone who reaches the server
// may make an account (and with it run code in a workspace) and the
// server can be reached from other machines: the policy is open and the
// listener is not on loopback. It reports whether it warned.
func warnOpenSignup(log *slog.Logger, policy signup.Policy, addr net.Addr) bool {
	if policy != signup.Open {
		return false
	}
	switch a := addr.(type) {
	case *net.UnixAddr:
		return false
	case *net.TCPAddr:
		if a.IP.IsLoopback() {
			return false
		}
	}
	log.Warn("SIGNUP IS OPEN on a server other machines can reach: anyone who reaches "+addr.String()+
		" can create an account and run code in a workspace. Unless every machine on this network is trusted, use --signup invite (the default) and invite people (dev8 invites create)",
		"signup", string(policy), "addr", addr.String())
	return true
}

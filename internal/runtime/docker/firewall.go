package docker

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// firewallTable is the nftables table of Dev8's host rules: its own, so
// they neither depend on nor disturb Docker's (iptables) rules or the
// administrator's. Each bridge has its chains there (input-<bridge>,
// forward-<bridge>), which setting the rules again replaces whole.
const firewallTable = "dev8"

// ctStatusDNAT is IPS_DST_NAT of the conntrack status bits.
const ctStatusDNAT = 1 << 5

// blockFromBridge makes the host drop, from the workspaces on bridge:
//
//   - every packet to the host itself (input) but replies to connections
//     the host opened: its services on any of its
//     addresses (the bridge's gateway included), the Dev8 server's
//     listeners, PostgreSQL, the Docker API over TCP, SSH;
//   - every packet from one workspace to another (forward, bridged);
//   - every packet the host would forward after rewriting its destination
//     (a port some other container publishes on the host's address): what
//     reaches a published port of the host is the host's service too.
//
// Containers on the bridge still reach the outside world (forwarded,
// masqueraded by the engine), and nothing needs to reach the host from
// them: their supervisor talks to the server over the agent socket. It
// needs CAP_NET_ADMIN (the server runs as root where it drives Docker on
// its own host) and nf_tables in the kernel; the rules are per bridge name,
// so they outlive the server and hold for containers it did not start.
func blockFromBridge(bridge string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable})
	policy := nftables.ChainPolicyAccept
	input := c.AddChain(&nftables.Chain{Name: "input-" + bridge, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	forward := c.AddChain(&nftables.Chain{Name: "forward-" + bridge, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	// The same batch empties them first: setting the rules twice (every
	// start of a server) leaves one copy.
	c.FlushChain(input)
	c.FlushChain(forward)
	fromBridge := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
	}
	// Replies to what the host opened (an operator's curl to a
	// workspace) pass; nothing a workspace opens does.
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: append(fromBridge[:len(fromBridge):len(fromBridge)],
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept})})
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: append(fromBridge[:len(fromBridge):len(fromBridge)],
		&expr.Verdict{Kind: expr.VerdictDrop})})
	// Between two workspaces (the engine's enable_icc=false says the
	// same, but only when it manages iptables).
	c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: append(fromBridge[:len(fromBridge):len(fromBridge)],
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(bridge)},
		&expr.Verdict{Kind: expr.VerdictDrop})})
	c.AddRule(&nftables.Rule{Table: t, Chain: forward, Exprs: append(fromBridge[:len(fromBridge):len(fromBridge)],
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: expr.VerdictDrop})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: set the rules for %s: %w", bridge, err)
	}
	// Frames between two ports of one bridge are not routed: the forward
	// hook sees them only with br_netfilter on (the engine turns it on
	// for its own rules, but not when it leaves iptables alone).
	if err := os.WriteFile(bridgeNFCallIPTables, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("let the firewall see traffic between workspaces (load the br_netfilter module): %w", err)
	}
	// Containers have IPv6 off unless their network enables it; when one
	// does, the same holds for it.
	_ = os.WriteFile(bridgeNFCallIP6Tables, []byte("1\n"), 0o644)
	return nil
}

// bridgeNFCallIPTables and bridgeNFCallIP6Tables turn br_netfilter on for
// IPv4 and IPv6.
const (
	bridgeNFCallIPTables  = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	bridgeNFCallIP6Tables = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
)

// ifname is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

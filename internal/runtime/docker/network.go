package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"dev8.dev/dev8/internal/runtime"
)

// The isolated network: every workspace container's unless
// Config.NetworkMode says otherwise. A bridge of its own (not Docker's
// default one, which other containers on the host use) with traffic
// between its containers off, so a workspace reaches neither another
// workspace nor, through the host firewall rules of firewall.go, any
// service of the host; outbound connections go out as from any container.
// The supervisor reaches the server through the agent socket (see
// runtime.Spec.AgentSocket), not over the network.
const (
	// IsolatedNetwork is the network's name.
	IsolatedNetwork = "dev8"
	// IsolatedBridge is its bridge's interface name on the host. Naming
	// it also makes the network unique on an engine: a second network
	// asking for the same bridge is refused, so servers creating it at the
	// same time end up with one.
	IsolatedBridge = "dev8br0"
)

// The engine's options for a bridge network.
const (
	optBridgeName = "com.docker.network.bridge.name"
	optICC        = "com.docker.network.bridge.enable_icc"
)

// networkMu serialises the check-then-create of the isolated network among
// the Runtimes of this process.
var networkMu sync.Mutex

// isolated says whether containers run on the isolated network.
func (r *Runtime) isolated() bool { return r.cfg.NetworkMode == r.netName }

// ensureNetwork makes sure the isolated network exists, with
// inter-container traffic off, and returns its id; the first time it
// succeeds it also sets the host's firewall rules for its bridge. It asks
// the engine every time: the network may have been removed meanwhile
// (docker network prune removes it while every workspace is stopped). A
// network of that name that lets containers talk to each other is refused:
// it is not ours to change. Not isolated: "", nil.
func (r *Runtime) ensureNetwork(ctx context.Context) (string, error) {
	if !r.isolated() {
		return "", nil
	}
	networkMu.Lock()
	defer networkMu.Unlock()
	nw, err := r.cli.NetworkInspect(ctx, r.netName, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		_, err = r.cli.NetworkCreate(ctx, r.netName, network.CreateOptions{
			Driver:  "bridge",
			Options: map[string]string{optBridgeName: r.bridgeName, optICC: "false"},
			Labels:  map[string]string{runtime.LabelManaged: "true"},
		})
		if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already") {
			return "", fmt.Errorf("docker: create network %s: %w", r.netName, err)
		}
		nw, err = r.cli.NetworkInspect(ctx, r.netName, network.InspectOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("docker: network %s: %w", r.netName, err)
	}
	if nw.Driver != "bridge" || nw.Options[optICC] != "false" {
		return "", runtime.Permanent(fmt.Errorf("docker: network %s exists but is not Dev8's (driver %q, %s=%q): workspaces on it could reach each other; remove it (docker network rm %s) and Dev8 makes its own",
			r.netName, nw.Driver, optICC, nw.Options[optICC], r.netName))
	}
	bridge := nw.Options[optBridgeName]
	if bridge == "" {
		bridge = r.bridgeName
	}
	r.mu.Lock()
	done := r.firewallSet[bridge]
	r.mu.Unlock()
	if !done {
		if err := r.firewall(bridge); err != nil {
			// Loopback services stay out of reach without it (a bridge has
			// its own loopback); the rest is said once, loudly.
			r.log.Warn("cannot keep workspaces away from the host's network services: anything listening on a non-loopback address of this host is reachable from workspaces",
				"bridge", bridge, "err", err)
		}
		r.mu.Lock()
		r.firewallSet[bridge] = true
		r.mu.Unlock()
	}
	return nw.ID, nil
}

// onNetwork says whether container ci is attached to network id, the one
// named name (always true when id is empty: not isolated).
func onNetwork(ci container.InspectResponse, name, id string) bool {
	if id == "" {
		return true
	}
	if ci.NetworkSettings == nil {
		return false
	}
	// A container never started has no network id yet: the engine
	// resolves the name at its first start.
	ep := ci.NetworkSettings.Networks[name]
	return ep != nil && (ep.NetworkID == id || ep.NetworkID == "")
}

// errRemoteEngine: the firewall is set on this host, which is not the
// engine's.
var errRemoteEngine = errors.New("the Docker engine is not on this host")

// firewall sets the host's rules for bridge, when the engine runs here.
func (r *Runtime) firewall(bridge string) error {
	if !strings.HasPrefix(r.cli.DaemonHost(), "unix://") {
		return errRemoteEngine
	}
	return blockFromBridge(bridge)
}

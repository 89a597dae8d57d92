package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"dev8.dev/dev8/internal/runtime"
)

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	id := spec.EnvironmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("docker: create: %w", err))
	}
	img := r.imageRef(spec.Image)
	if img == "" {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("docker: create %s: no image in the spec and no default image", id))
	}
	// The reference actually run is part of the hash: pointing a template
	// at another image recreates stopped containers on their next start.
	spec.Image = img
	hash := specHash(spec)
	name := ObjectName(id)
	networkID, err := r.ensureNetwork(ctx)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}
	ci, err := r.cli.ContainerInspect(ctx, name)
	switch {
	case err == nil:
		if isRunning(ci) {
			return r.instance(ci), nil
		}
		if ci.Config.Labels[LabelSpec] == hash && onNetwork(ci, r.netName, networkID) {
			// This start's credential, for the container as it is.
			if err := r.copyAgentToken(ctx, ci.ID, spec.AgentToken); err != nil {
				return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
			}
			return r.instance(ci), nil
		}
		// Stopped with an older spec, or attached to a network that was
		// removed since (it could not start): the container's
		// configuration is immutable, so make a new one over the same
		// volumes.
		r.log.Info("spec or network changed, recreating container", "environment", id)
		if err := r.cli.ContainerRemove(ctx, ci.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return runtime.Instance{}, fmt.Errorf("docker: create %s: remove old container: %w", id, err)
		}
	case !cerrdefs.IsNotFound(err):
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}

	imgInfo, err := r.ensureImage(ctx, img)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}
	codeServer := r.cfg.CodeServer
	if imgInfo.Config != nil && imgInfo.Config.Labels[LabelCodeServer] != "" {
		codeServer = imgInfo.Config.Labels[LabelCodeServer]
	}
	// Who the container starts as, and who the supervisor becomes.
	ctrUser, wsUser := r.cfg.User, ""
	if ctrUser == "" {
		ctrUser, wsUser = "0:0", r.cfg.WorkspaceUser
		if imgInfo.Config != nil && !isRoot(imgInfo.Config.User) {
			wsUser = imgInfo.Config.User
		}
	}

	labels := map[string]string{
		runtime.LabelManaged:      "true",
		runtime.LabelInstallation: r.cfg.Installation,
		runtime.LabelEnvironment:  id,
		runtime.LabelUser:         spec.UserID,
	}
	// The workspace volume is looked for first: when it is not there (a
	// first Create, or it was removed with the container while stopped, or
	// this is a new host), the workspace starts empty, and the caller is
	// told so.
	if _, err := r.cli.VolumeInspect(ctx, name); cerrdefs.IsNotFound(err) {
		r.mu.Lock()
		r.newVolume[id] = true
		r.mu.Unlock()
	} else if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: volume %s: %w", id, name, err)
	}
	// Creating a volume that exists returns it: a retried Create (or one
	// after a crash between volume and container) reuses it.
	for _, v := range []string{name, homeVolume(id)} {
		if _, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: v, Labels: labels}); err != nil {
			return runtime.Instance{}, fmt.Errorf("docker: create %s: volume %s: %w", id, v, err)
		}
	}

	cfg, host := r.containerConfig(spec, labels, hash, ctrUser, wsUser, codeServer)
	if n := r.engineCPUs(ctx); n > 0 && host.NanoCPUs > int64(n)*1e9 {
		// The engine refuses a CPU limit above its CPUs, and such a limit
		// limits nothing: a size bigger than this machine (a template's
		// default of 4 vCPU on a 2-core laptop) gets all of it.
		r.log.Debug("CPU limit above the engine's CPUs; using all of them", "environment", id, "asked", spec.CPUCores, "cpus", n)
		host.NanoCPUs = int64(n) * 1e9
	}
	resp, err := r.cli.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			// Someone (a previous, interrupted call) created it meanwhile.
			ci, ierr := r.cli.ContainerInspect(ctx, name)
			if ierr == nil {
				return r.instance(ci), nil
			}
		}
		if cerrdefs.IsInvalidArgument(err) {
			err = runtime.Permanent(err)
		}
		return runtime.Instance{}, fmt.Errorf("docker: create %s: container: %w", id, err)
	}
	if err := r.copySupervisor(ctx, resp.ID); err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}
	if err := r.copyAgentToken(ctx, resp.ID, spec.AgentToken); err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}
	ci, err = r.cli.ContainerInspect(ctx, resp.ID)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: create %s: %w", id, err)
	}
	inst := r.instance(ci)
	r.mu.Lock()
	inst.StorageCreated = r.newVolume[id]
	delete(r.newVolume, id)
	r.mu.Unlock()
	if inst.StorageCreated {
		r.log.Info("workspace volume created", "environment", id, "volume", name)
	}
	return inst, nil
}

// containerConfig is the configuration of spec's container: its image
// (spec.Image, resolved), user, environment and labels, and its limits,
// security options, network and mounts. See the package doc.
func (r *Runtime) containerConfig(spec runtime.Spec, labels map[string]string, hash, ctrUser, wsUser, codeServer string) (*container.Config, *container.HostConfig) {
	id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)
	cLabels := maps.Clone(labels)
	cLabels[LabelSpec] = hash
	cfg := &container.Config{
		Image:      spec.Image,
		User:       ctrUser,
		Env:        r.env(spec, useAgentSocket(spec, container.NetworkMode(r.cfg.NetworkMode)), wsUser, codeServer),
		Entrypoint: []string{SupervisorPath, "supervisor"},
		Cmd:        []string{},
		WorkingDir: WorkspaceDir,
		Labels:     cLabels,
		StopSignal: "SIGTERM",
	}
	pids := r.cfg.PidsLimit
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(r.cfg.NetworkMode),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Privileged:    false,
		SecurityOpt:   []string{"no-new-privileges"},
		// No capability beyond what the supervisor needs to become the
		// workspace user (see capabilities): no NET_RAW to sniff or spoof,
		// no MKNOD, no SYS_CHROOT, none at all after it dropped to the user.
		CapDrop: []string{"ALL"},
		CapAdd:  capabilities(ctrUser),
		// The labels again: should a volume vanish between VolumeCreate and
		// here (a concurrent delete), the engine makes it anew from these
		// options, and it stays findable by label instead of anonymous.
		Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: name, Target: WorkspaceDir, VolumeOptions: &mount.VolumeOptions{Labels: labels}},
			{Type: mount.TypeVolume, Source: homeVolume(id), Target: r.cfg.HomeDir, VolumeOptions: &mount.VolumeOptions{Labels: labels}},
		},
		Resources: container.Resources{PidsLimit: &pids},
		// Sockets of this start only (code-server's): not a host path.
		Tmpfs: map[string]string{RunDir: "mode=1777,size=1m"},
	}
	switch {
	case host.NetworkMode.IsHost():
	case useAgentSocket(spec, host.NetworkMode):
		// The agent socket's directory, read-only (connecting to a socket
		// is not writing the file system): the only host path in a
		// workspace, and what its supervisor reaches the server through.
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: filepath.Dir(spec.AgentSocket), Target: AgentSocketDir, ReadOnly: true})
	default:
		// Lets AgentURL name the host as host.docker.internal (the
		// bridge's gateway address) on engines from 20.10.
		host.ExtraHosts = []string{"host.docker.internal:host-gateway"}
	}
	if spec.CPUCores > 0 {
		// NanoCPUs: 0.5 vCPU is 5e8, exactly (sizes are multiples of
		// 0.25); rounding only guards against float noise.
		host.NanoCPUs = int64(math.Round(spec.CPUCores * 1e9))
	}
	if spec.MemoryGB > 0 {
		host.Memory = int64(spec.MemoryGB) << 30
		host.MemorySwap = host.Memory // no swap beyond the limit
	}
	return cfg, host
}

// capabilities are the ones a container starting as ctrUser keeps: a
// supervisor starting as root (to hand the volumes to the workspace user
// and become them, see workspaceuser.BecomeWorkspaceUser) needs to change
// owners, read what root owns and change its ids; its permitted set is
// emptied when it becomes the user, and no-new-privileges keeps it so. A
// container starting as somebody else needs none.
func capabilities(ctrUser string) []string {
	if !isRoot(ctrUser) {
		return nil
	}
	return []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"}
}

// useAgentSocket says whether the supervisor of a container on mode
// reaches the server through the agent socket: when there is one and the
// container has its own network (host networking reaches AgentURL as the
// host does).
func useAgentSocket(spec runtime.Spec, mode container.NetworkMode) bool {
	return spec.AgentSocket != "" && !mode.IsHost()
}

// isRoot says whether an image's USER means root (or is unset).
func isRoot(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name == "" || name == "root" || name == "0"
}

// specHash is what makes a stopped container be made anew: everything in
// the spec but the agent token, which is new at every start and reaches the
// container as a file (copyAgentToken), so that what was installed in the
// container outlives a stop.
func specHash(spec runtime.Spec) string {
	spec.AgentToken = ""
	b, _ := json.Marshal(spec) // a struct of strings, ints and maps: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Package docker is the runtime that runs each workspace as a Docker
// container on one host, over the Docker Engine API.
//
// Per environment <id> it manages:
//
//	container dev8-<id>   the compute; entry process `/.dev8/bin/dev8 supervisor`
//	volume    dev8-<id>   the persistent /workspace: kept by Stop, removed by Delete
//
// Both carry the labels dev8.managed=true, dev8.environment=<id> and
// dev8.user=<user id>, so List (and an operator with `docker ps --filter
// label=dev8.managed=true`) finds them after a restart of the server. The
// container also carries dev8.spec, a hash of the Spec it was created from:
// Create of a stopped instance whose Spec changed (a new server URL or token)
// recreates the container over the same volume.
//
// The supervisor is a static binary (Config.SupervisorBinary: the small
// cmd/dev8-supervisor the server extracts from its embedded copy, else the
// server's own dev8), copied into the container at /.dev8/bin/dev8 after
// ContainerCreate and again before a Start when it is missing or differs in
// size (so a container created by an older server gets the new one on its
// next start), so any image with a shell (or none: FROM scratch works) can
// be a workspace.
//
// Networking: containers use the host's network namespace (NetworkMode
// "host"). Spec.AgentURL is handed to the supervisor as given, and the
// server's usual AgentURL is a loopback or host address: with host networking
// it means the same inside the container as on the host, with no NAT, no
// published ports and no iptables (these machines run dockerd
// --iptables=false). The cost is that workspaces are not isolated from the
// host's network or from each other at the network level (their processes
// can connect to anything listening on the host, loopback included), and
// anything a workspace binds, it binds on the host. The supervisor binds
// nothing of its own here: its loopback status endpoint is disabled
// (DEV8_SUPERVISOR_ADDR is set empty) and everything reaches the workspace
// through the supervisor's tunnel, which it dials out. A bridge network needs
// the server to listen on the bridge's gateway address and an AgentURL
// to name it: with any other Config.NetworkMode ("bridge") containers get
// host.docker.internal mapped to the host's gateway address, and the server
// must listen there (not only on loopback) and give an AgentURL such as
// http://host.docker.internal:PORT. Both ways were seen to work here (see
// TestAgentReachable); this package does not rewrite URLs.
//
// State: a running container is StateRunning; anything else is StateStopped.
// ExitReason comes from the exit code and OOMKilled. The supervisor exits 0
// only when told to stop (SIGTERM), so exit code 0 counts as a requested stop
// whichever Runtime (or engine) sent it: that is how a new Runtime after a
// server restart tells a Stop from a crash. Consequence: when dockerd itself
// restarts (without --live-restore) it SIGTERMs the workspaces, which then
// show as stopped with no reason, and stay stopped (restart policy "no")
// until the lifecycle starts them.
//
// IDE: an image that has code-server says where with the label
// dev8.code-server=<path> (Dev8's images do; Config.CodeServer covers images
// without the label). The supervisor then runs it listening on a unix socket,
// /run/dev8/code-server.sock on a tmpfs of the container's own (fresh at
// every start), not on a port: with host networking every workspace shares
// the host's ports, while a socket file is private to its container. The
// server reaches it through the supervisor's tunnel (ServiceIDE), and
// Instance.IDEAddress is that socket ("unix:/run/dev8/code-server.sock").
// Images without code-server have no IDE (IDEAddress empty).
//
// User: the container starts as root and the supervisor becomes the
// workspace user (the image's USER, else dev8) before anything else, after
// handing /workspace and the home to them: see Config.WorkspaceUser and
// supervisor.BecomeWorkspaceUser.
//
// Engine restarts: with dockerd --live-restore the containers keep running
// through a restart of the engine and nothing changes for the workspaces
// (the event watcher reconnects). Without it the engine stops them (SIGTERM:
// exit code 0, so no ExitReason) and the lifecycle marks their environments
// ERROR "the workspace stopped unexpectedly"; see TestDockerdRestart.
//
// Stop waits for a supervisor that was started a moment ago to say it is
// up before it sends SIGTERM (see waitReady): a Go program that is PID 1 and
// gets SIGTERM before it handles the signal exits with code 2, which would
// read as a crash.
//
// Limits: Spec.CPUCores → NanoCPUs, Spec.MemoryGB → Memory (swap no more
// than memory), Config.PidsLimit → PidsLimit; never privileged,
// no-new-privileges, restart policy "no" (the lifecycle decides whether a
// workspace that stopped on its own comes back). Spec.StorageGB is not
// enforced (volume quotas need a storage driver with project quotas).
package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

// Paths inside every workspace container.
const (
	// WorkspaceDir is where the environment's volume is mounted.
	WorkspaceDir = "/workspace"
	// DefaultHomeDir is the workspace user's home in Dev8's images (user
	// dev8, uid 1000).
	DefaultHomeDir = "/home/dev8"
	// SupervisorPath is where the supervisor binary is copied.
	SupervisorPath = "/.dev8/bin/dev8"
	// DefaultWorkspaceUser is the user Dev8's images define (uid 1000).
	DefaultWorkspaceUser = "dev8"
)

// LabelSpec holds a hash of the Spec a container was created from.
const LabelSpec = "dev8.spec"

// LabelCodeServer on an image gives the path of its code-server executable.
const LabelCodeServer = "dev8.code-server"

// Where the supervisor runs code-server in a container: a unix socket on a
// tmpfs (RunDir) the container gets at every start.
const (
	RunDir           = "/run/dev8"
	CodeServerSocket = "unix:" + RunDir + "/code-server.sock"
)

// Config configures a docker Runtime.
type Config struct {
	// Client talks to the engine. Default: client.NewClientWithOpts(
	// client.FromEnv, client.WithAPIVersionNegotiation()), i.e. DOCKER_HOST
	// or the local socket.
	Client *client.Client
	// SupervisorBinary is the binary copied into every container and run
	// as `<it> supervisor`: cmd/dev8-supervisor or dev8 itself. It must be
	// a static linux/amd64 executable (make build uses CGO_ENABLED=0).
	// Default: os.Executable(); the server passes the embedded supervisor
	// it extracted (internal/supervisorbin).
	SupervisorBinary string
	// DefaultImage is used when Spec.Image is empty.
	DefaultImage string
	// CodeServer is the path of code-server inside containers whose image
	// has no LabelCodeServer label; empty: those images have no IDE.
	CodeServer string
	// ImageRefs maps an image name as the catalog's templates give it
	// (Spec.Image "dev8/nodejs") to the reference to run
	// ("registry.example/dev8/nodejs:1"): how an operator points templates
	// at their own registry. Names not in it are run as given.
	ImageRefs map[string]string
	// User, when set, runs the container's processes ("uid", "uid:gid" or
	// a name the image knows) from the start, and WorkspaceUser is not
	// used. Default "": the supervisor starts as root and becomes the
	// workspace user (below) before anything else.
	User string
	// WorkspaceUser is who workspace processes run as when User is empty:
	// the image's USER if it names one other than root, else this (default
	// "dev8", uid 1000 in Dev8's images). The supervisor starts as root,
	// hands /workspace and the home directory to that user when they are
	// not theirs yet (a volume over a mount point the image lacks), then
	// drops to the user for good: see supervisor.BecomeWorkspaceUser. An
	// image without that user (a bare busybox) runs its workspace as root.
	WorkspaceUser string
	// NetworkMode of every container. Default "host": see the package doc.
	NetworkMode string
	// PidsLimit caps processes per container. Default 4096.
	PidsLimit int64
	// NoPull makes Create fail at once when the image is not present,
	// instead of trying to pull it first.
	NoPull bool
	// Installation names this Dev8 installation (runtime.LabelInstallation):
	// only containers and volumes carrying it are listed, adopted, watched
	// or removed, so installations sharing an engine leave each other's
	// workspaces alone. Default "default".
	Installation string
	// HomeDir is the workspace user's home inside the container. It is a
	// volume of its own, so settings, shell history, VS Code extensions,
	// dotfiles and the SSH host key outlive the container; Docker fills a
	// new volume from the image's directory, so what the image put there
	// is kept. Default DefaultHomeDir.
	HomeDir string
	// ExtraEnv is added to every container's environment ("KEY=value"),
	// before Spec.Env; the runtime's DEV8_* variables win over both.
	ExtraEnv []string
	// StopTimeout is how long a container gets between SIGTERM and SIGKILL.
	// Default 10s; the supervisor is told half of it.
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Runtime runs workspaces as Docker containers. See the package doc.
type Runtime struct {
	cfg     Config
	cli     *client.Client
	log     *slog.Logger
	binSize int64

	mu      sync.Mutex
	stopped map[string]bool // environments this Runtime stopped since their last Start
	// newVolume holds environments whose workspace volume a Create made
	// but whose Create failed after that: the retry finds the volume and
	// must still report it as new (runtime.Instance.StorageCreated).
	newVolume map[string]bool
	notify    []chan<- string
	// The event watcher NotifyExits starts and Close ends.
	watchCancel context.CancelFunc
	watchDone   chan struct{}
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.ExitNotifier = (*Runtime)(nil)
)

// New returns a Runtime. It does not contact the engine: see Ping.
func New(cfg Config) (*Runtime, error) {
	if cfg.SupervisorBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("docker: find own executable for the supervisor: %w", err)
		}
		cfg.SupervisorBinary = exe
	}
	fi, err := os.Stat(cfg.SupervisorBinary)
	if err != nil {
		return nil, fmt.Errorf("docker: supervisor binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("docker: supervisor binary %s is not a regular file", cfg.SupervisorBinary)
	}
	if cfg.NetworkMode == "" {
		cfg.NetworkMode = "host"
	}
	if cfg.Installation == "" {
		cfg.Installation = "default"
	}
	if cfg.HomeDir == "" {
		cfg.HomeDir = DefaultHomeDir
	}
	if cfg.WorkspaceUser == "" {
		cfg.WorkspaceUser = DefaultWorkspaceUser
	}
	if cfg.PidsLimit <= 0 {
		cfg.PidsLimit = 4096
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cli := cfg.Client
	if cli == nil {
		cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker: client: %w", err)
		}
	}
	return &Runtime{
		cfg:       cfg,
		cli:       cli,
		log:       cfg.Logger.With("runtime", "docker"),
		binSize:   fi.Size(),
		stopped:   map[string]bool{},
		newVolume: map[string]bool{},
	}, nil
}

// Client returns the engine client the Runtime uses.
func (r *Runtime) Client() *client.Client { return r.cli }

// Ping reports whether the engine answers.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: engine does not answer: %w", err)
	}
	return nil
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "docker" }

// homeVolume names an environment's home volume.
func homeVolume(environmentID string) string { return ObjectName(environmentID) + "-home" }

// Container and volume names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid environment id %q", id)
	}
	return nil
}

// ObjectName is the name of an environment's container and of its volume.
func ObjectName(environmentID string) string { return "dev8-" + environmentID }

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	id := spec.EnvironmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("docker: create: %w", err))
	}
	img := spec.Image
	if img == "" {
		img = r.cfg.DefaultImage
	}
	if ref, ok := r.cfg.ImageRefs[img]; ok {
		img = ref
	}
	if img == "" {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("docker: create %s: no image in the spec and no default image", id))
	}
	// The reference actually run is part of the hash: pointing a template
	// at another image recreates stopped containers on their next start.
	spec.Image = img
	hash := specHash(spec)
	name := ObjectName(id)
	ci, err := r.cli.ContainerInspect(ctx, name)
	switch {
	case err == nil:
		if isRunning(ci) || ci.Config.Labels[LabelSpec] == hash {
			return r.instance(ci), nil
		}
		// Stopped with an older spec: the container's configuration is
		// immutable, so make a new one over the same volume.
		r.log.Info("spec changed, recreating container", "environment", id)
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

	cLabels := maps.Clone(labels)
	cLabels[LabelSpec] = hash
	cfg := &container.Config{
		Image:      img,
		User:       ctrUser,
		Env:        r.env(spec, wsUser, codeServer),
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
	if !host.NetworkMode.IsHost() {
		// Lets AgentURL name the host as host.docker.internal (the
		// bridge's gateway address) on engines from 20.10.
		host.ExtraHosts = []string{"host.docker.internal:host-gateway"}
	}
	if spec.CPUCores > 0 {
		host.NanoCPUs = int64(spec.CPUCores) * 1e9
	}
	if spec.MemoryGB > 0 {
		host.Memory = int64(spec.MemoryGB) << 30
		host.MemorySwap = host.Memory // no swap beyond the limit
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

// isRoot says whether an image's USER means root (or is unset).
func isRoot(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name == "" || name == "root" || name == "0"
}

// env is the container's environment (agentapi.Launch.Environ): ExtraEnv,
// then Spec.Env, then the supervisor's DEV8_* variables. wsUser, if not
// empty, is the user the supervisor becomes; codeServer, if not empty, the
// code-server it runs on CodeServerSocket. The supervisor binds no status
// endpoint: the container shares the host's network.
func (r *Runtime) env(spec runtime.Spec, wsUser, codeServer string) []string {
	return agentapi.Launch{
		Extra:         r.cfg.ExtraEnv,
		Env:           spec.Env,
		Home:          r.cfg.HomeDir,
		EnvironmentID: spec.EnvironmentID,
		WorkspaceDir:  WorkspaceDir,
		KillAfter:     r.cfg.StopTimeout,
		AgentURL:      spec.AgentURL,
		AgentToken:    spec.AgentToken,
		CodeServer:    codeServer,
		// Only read when CodeServer is set.
		CodeServerAddr: CodeServerSocket,
		WorkspaceUser:  wsUser,
	}.Environ()
}

func specHash(spec runtime.Spec) string {
	b, _ := json.Marshal(spec) // a struct of strings, ints and maps: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// ensureImage inspects img, pulling it first when it is not present unless
// NoPull; a missing image that cannot be pulled is a permanent error.
func (r *Runtime) ensureImage(ctx context.Context, img string) (image.InspectResponse, error) {
	info, err := r.cli.ImageInspect(ctx, img)
	if err == nil {
		return info, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return info, fmt.Errorf("inspect image %q: %w", img, err)
	}
	if r.cfg.NoPull {
		return info, runtime.Permanent(fmt.Errorf("image %q is not present (pulling is disabled)", img))
	}
	r.log.Info("pulling image", "image", img)
	if perr := r.pull(ctx, img); perr != nil {
		if ctx.Err() != nil {
			return info, fmt.Errorf("pull image %q: %w", img, ctx.Err())
		}
		return info, runtime.Permanent(fmt.Errorf("image %q is not present and could not be pulled (make images builds Dev8's images): %w", img, perr))
	}
	info, err = r.cli.ImageInspect(ctx, img)
	if err != nil {
		return info, runtime.Permanent(fmt.Errorf("image %q is not present after a pull: %w", img, err))
	}
	return info, nil
}

// pull pulls img, logging progress per layer status change.
func (r *Runtime) pull(ctx context.Context, img string) error {
	rc, err := r.cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(bufio.NewReader(rc))
	last := ""
	for {
		var m struct {
			Status string `json:"status"`
			ID     string `json:"id"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if s := m.ID + " " + m.Status; s != last {
			last = s
			r.log.Debug("pull", "image", img, "layer", m.ID, "status", m.Status)
		}
	}
}

// copySupervisor copies the supervisor binary into the (created, not
// necessarily running) container at SupervisorPath.
func (r *Runtime) copySupervisor(ctx context.Context, containerID string) error {
	f, err := os.Open(r.cfg.SupervisorBinary)
	if err != nil {
		return fmt.Errorf("supervisor binary: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("supervisor binary: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		now := time.Now()
		err := func() error {
			for _, d := range []string{".dev8/", ".dev8/bin/"} {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
					return err
				}
			}
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeReg, Name: strings.TrimPrefix(SupervisorPath, "/"),
				Mode: 0o755, Size: fi.Size(), ModTime: now,
			}); err != nil {
				return err
			}
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	if err := r.cli.CopyToContainer(ctx, containerID, "/", pr, container.CopyToContainerOptions{}); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("copy supervisor into container: %w", err)
	}
	return nil
}

// ensureSupervisor copies the supervisor in unless a file of the same size
// is there already (a Create interrupted before its copy, or a server
// upgraded since).
func (r *Runtime) ensureSupervisor(ctx context.Context, containerID string) error {
	st, err := r.cli.ContainerStatPath(ctx, containerID, SupervisorPath)
	if err == nil && st.Size == r.binSize && st.Mode.IsRegular() {
		return nil
	}
	return r.copySupervisor(ctx, containerID)
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, environmentID string) (runtime.Instance, error) {
	if err := checkID(environmentID); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("docker: start: %w", err))
	}
	ci, err := r.cli.ContainerInspect(ctx, ObjectName(environmentID))
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return runtime.Instance{}, fmt.Errorf("docker: start %s: no such instance (create it first)", environmentID)
		}
		return runtime.Instance{}, fmt.Errorf("docker: start %s: %w", environmentID, err)
	}
	if isRunning(ci) {
		return r.instance(ci), nil
	}
	if err := r.ensureSupervisor(ctx, ci.ID); err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: start %s: %w", environmentID, err)
	}
	r.mu.Lock()
	delete(r.stopped, environmentID)
	r.mu.Unlock()
	if err := r.cli.ContainerStart(ctx, ci.ID, container.StartOptions{}); err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: start %s: %w", environmentID, err)
	}
	ci, err = r.cli.ContainerInspect(ctx, ci.ID)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: start %s: %w", environmentID, err)
	}
	inst := r.instance(ci)
	if inst.State != runtime.StateRunning {
		reason := inst.ExitReason
		if tail := r.logTail(ctx, ci.ID); tail != "" {
			reason += "; last output: " + tail
		}
		return inst, fmt.Errorf("docker: start %s: supervisor exited at once: %s", environmentID, reason)
	}
	return inst, nil
}

// logTail returns the last lines a container printed, for error messages.
func (r *Runtime) logTail(ctx context.Context, containerID string) string {
	rc, err := r.cli.ContainerLogs(ctx, containerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 4096))
	// Strip the multiplexing headers (8 bytes per frame) crudely: keep
	// printable text only.
	s := strings.Map(func(c rune) rune {
		if c == '\n' || (c >= ' ' && c != 0x7f) {
			return c
		}
		return -1
	}, string(b))
	return strings.TrimSpace(strings.ReplaceAll(s, "\n", " | "))
}

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(ctx context.Context, environmentID string) error {
	if err := checkID(environmentID); err != nil {
		return runtime.Permanent(fmt.Errorf("docker: stop: %w", err))
	}
	r.mu.Lock()
	r.stopped[environmentID] = true
	r.mu.Unlock()
	if err := r.stop(ctx, ObjectName(environmentID)); err != nil {
		return fmt.Errorf("docker: stop %s: %w", environmentID, err)
	}
	return nil
}

// termInterval is how often stop repeats SIGTERM until the container exits.
const termInterval = 250 * time.Millisecond

// readyWindow bounds how long stop waits for a supervisor that was just
// started to take SIGTERM (see waitReady).
const readyWindow = 10 * time.Second

// stop sends the container SIGTERM, again every termInterval, until it has
// exited, and SIGKILL once StopTimeout has passed. The supervisor ignores
// repeats while it shuts down.
func (r *Runtime) stop(ctx context.Context, name string) error {
	r.waitReady(ctx, name)
	deadline := time.Now().Add(r.cfg.StopTimeout)
	for {
		if err := r.cli.ContainerKill(ctx, name, "SIGTERM"); err != nil {
			if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
				return nil // gone, or not running
			}
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, min(termInterval, time.Until(deadline)))
		waitCh, errCh := r.cli.ContainerWait(wctx, name, container.WaitConditionNotRunning)
		select {
		case <-waitCh:
			cancel()
			return nil
		case err := <-errCh:
			cancel()
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if time.Now().After(deadline) {
			zero := 0
			err := r.cli.ContainerStop(ctx, name, container.StopOptions{Signal: "SIGKILL", Timeout: &zero})
			if err != nil && !cerrdefs.IsNotFound(err) {
				return err
			}
			return nil
		}
	}
}

// Delete implements runtime.Runtime.
func (r *Runtime) Delete(ctx context.Context, environmentID string) error {
	if err := checkID(environmentID); err != nil {
		return runtime.Permanent(fmt.Errorf("docker: delete: %w", err))
	}
	name := ObjectName(environmentID)
	// A graceful stop first, so the supervisor can send its last report.
	if err := r.Stop(ctx, environmentID); err != nil {
		r.log.Warn("delete: graceful stop failed, removing anyway", "environment", environmentID, "err", err)
	}
	if err := r.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: delete %s: container: %w", environmentID, err)
	}
	for _, v := range []string{name, homeVolume(environmentID)} {
		if err := r.cli.VolumeRemove(ctx, v, true); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: delete %s: volume %s: %w", environmentID, v, err)
		}
	}
	r.mu.Lock()
	delete(r.stopped, environmentID)
	r.mu.Unlock()
	return nil
}

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(ctx context.Context, environmentID string) (runtime.Instance, error) {
	if err := checkID(environmentID); err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: inspect: %w: %w", runtime.ErrNotFound, err)
	}
	ci, err := r.cli.ContainerInspect(ctx, ObjectName(environmentID))
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return runtime.Instance{}, fmt.Errorf("docker: inspect %s: %w", environmentID, runtime.ErrNotFound)
		}
		return runtime.Instance{}, fmt.Errorf("docker: inspect %s: %w", environmentID, err)
	}
	if ci.Config == nil || ci.Config.Labels[runtime.LabelManaged] != "true" || ci.Config.Labels[runtime.LabelEnvironment] != environmentID ||
		ci.Config.Labels[runtime.LabelInstallation] != r.cfg.Installation {
		// A container of that name that we did not make.
		return runtime.Instance{}, fmt.Errorf("docker: inspect %s: container %s is not managed by dev8: %w", environmentID, ci.Name, runtime.ErrNotFound)
	}
	return r.instance(ci), nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{
		All: true,
		Filters: filters.NewArgs(
			filters.Arg("label", runtime.LabelManaged+"=true"),
			filters.Arg("label", runtime.LabelInstallation+"="+r.cfg.Installation),
		),
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list: %w", err)
	}
	out := make([]runtime.Instance, 0, len(cs))
	for _, c := range cs {
		if c.Labels[runtime.LabelEnvironment] == "" {
			continue
		}
		// The summary lacks exit codes and start times: inspect each.
		ci, err := r.cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("docker: list: %w", err)
		}
		out = append(out, r.instance(ci))
	}
	return out, nil
}

func isRunning(ci container.InspectResponse) bool {
	return ci.State != nil && ci.State.Running && !ci.State.Paused && !ci.State.Restarting
}

// instance maps what the engine reports to the runtime's view.
func (r *Runtime) instance(ci container.InspectResponse) runtime.Instance {
	var labels map[string]string
	if ci.Config != nil {
		labels = ci.Config.Labels
	}
	id := labels[runtime.LabelEnvironment]
	inst := runtime.Instance{
		EnvironmentID: id,
		Ref:           ci.ID,
		State:         runtime.StateStopped,
		WorkspaceDir:  WorkspaceDir,
	}
	st := ci.State
	if st == nil {
		return inst
	}
	if isRunning(ci) {
		inst.State = runtime.StateRunning
		if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil {
			inst.StartedAt = t
		}
		if ci.Config != nil && slices.ContainsFunc(ci.Config.Env, func(kv string) bool {
			v, ok := strings.CutPrefix(kv, agentapi.EnvCodeServer+"=")
			return ok && v != ""
		}) {
			inst.IDEAddress = CodeServerSocket
		}
		return inst
	}
	r.mu.Lock()
	requested := r.stopped[id]
	r.mu.Unlock()
	inst.ExitReason = exitReason(st, requested)
	return inst
}

// exitReason says why a container that is not running stopped, or "" when it
// was never started or was stopped on request. The supervisor exits 0 only
// when it was asked to stop (SIGTERM: a Stop, of this or an earlier Runtime,
// or of the engine shutting down), so an exit code of 0 counts as requested.
func exitReason(st *container.State, requested bool) string {
	if requested && !st.OOMKilled {
		return ""
	}
	if st.StartedAt == "" || strings.HasPrefix(st.StartedAt, "0001-01-01") {
		return "" // created, never started
	}
	switch {
	case st.OOMKilled:
		return fmt.Sprintf("out of memory: killed (exit code %d)", st.ExitCode)
	case st.Error != "":
		return "container failed: " + st.Error
	case st.ExitCode == 0:
		return ""
	case st.ExitCode > 128 && st.ExitCode <= 128+64:
		return "supervisor exited: exit code " + strconv.Itoa(st.ExitCode) + " (killed by signal " + strconv.Itoa(st.ExitCode-128) + ")"
	default:
		return "supervisor exited: exit code " + strconv.Itoa(st.ExitCode)
	}
}

// NotifyExits implements runtime.ExitNotifier. The first call starts watching
// the engine's "die" events for managed containers (until Close); an
// environment is sent when its container died and Inspect then shows it
// stopped with an ExitReason (so not after a Stop, of this Runtime or
// another). Sends never block: when ch is full the id is dropped and the
// lifecycle's resync notices the exit. Events missed while the engine was
// unreachable are not replayed beyond the last one seen.
func (r *Runtime) NotifyExits(ch chan<- string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notify = append(r.notify, ch)
	if r.watchCancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.watchCancel, r.watchDone = cancel, make(chan struct{})
		go r.watchEvents(ctx, r.watchDone)
	}
}

// Close stops the event watcher NotifyExits started, if any, and closes the
// engine client (Config.Client included).
func (r *Runtime) Close() error {
	r.mu.Lock()
	cancel, done := r.watchCancel, r.watchDone
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return r.cli.Close()
}

func (r *Runtime) watchEvents(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("label", runtime.LabelManaged+"=true"),
		filters.Arg("label", runtime.LabelInstallation+"="+r.cfg.Installation),
	)
	var since string
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msgs, errs := r.events(ctx, since, f)
	recv:
		for {
			select {
			case m := <-msgs:
				backoff = 100 * time.Millisecond
				if m.TimeNano > 0 {
					// Resume after this one on a reconnect (the engine
					// takes seconds.nanoseconds).
					since = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9+1)
				}
				r.handleDie(ctx, m.Actor.Attributes[runtime.LabelEnvironment])
			case err := <-errs:
				if ctx.Err() == nil {
					r.log.Warn("engine events interrupted, reconnecting", "err", err, "in", backoff)
				}
				break recv
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// events subscribes to the engine's events. Client.Events reads the API
// version without negotiating it first (a data race with any concurrent first
// request), so a request that negotiates it goes first.
func (r *Runtime) events(ctx context.Context, since string, f filters.Args) (<-chan events.Message, <-chan error) {
	if _, err := r.cli.ServerVersion(ctx); err != nil {
		errs := make(chan error, 1)
		errs <- err
		return nil, errs
	}
	return r.cli.Events(ctx, events.ListOptions{Since: since, Filters: f})
}

func (r *Runtime) handleDie(ctx context.Context, environmentID string) {
	if environmentID == "" {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	inst, err := r.Inspect(ictx, environmentID)
	cancel()
	if err != nil || inst.State != runtime.StateStopped || inst.ExitReason == "" {
		return // gone, running again, or stopped on request
	}
	r.log.Info("workspace container exited on its own", "environment", environmentID, "reason", inst.ExitReason)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.notify {
		select {
		case ch <- environmentID:
		default:
		}
	}
}

// waitReady waits, for at most readyWindow after the container started,
// until the supervisor has said "supervisor started", which it does after it
// took over SIGTERM. Before that a SIGTERM reaches the Go runtime's own
// handler, which, in PID 1 of a container, cannot die by the signal and
// exits with code 2: indistinguishable from a crash. Only a Stop right
// after a Start waits here.
func (r *Runtime) waitReady(ctx context.Context, name string) {
	ci, err := r.cli.ContainerInspect(ctx, name)
	if err != nil || !isRunning(ci) {
		return
	}
	started, err := time.Parse(time.RFC3339Nano, ci.State.StartedAt)
	if err != nil || time.Since(started) > readyWindow {
		return
	}
	deadline := started.Add(readyWindow)
	for time.Now().Before(deadline) {
		rc, err := r.cli.ContainerLogs(ctx, ci.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Since: ci.State.StartedAt})
		if err != nil {
			return
		}
		b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if strings.Contains(string(b), "supervisor started") {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

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
// Networking: containers run on IsolatedNetwork (network.go), a bridge
// of Dev8's own with traffic between its containers off, and the host's
// firewall (firewall.go, nftables rules on the bridge) drops everything a
// workspace sends to the host itself or to a port published on it: a
// workspace reaches neither another workspace nor any service of the host
// (the Dev8 server's listeners, PostgreSQL, the admin listener, SSH), while
// its outbound connections go out as from any container. The supervisor
// reaches the server through the agent socket (Spec.AgentSocket), whose
// directory is bind-mounted read-only at AgentSocketDir, the only host path
// in a container: it needs no network path to the server. It binds nothing
// of its own (DEV8_SUPERVISOR_ADDR is set empty): everything reaches the
// workspace through the tunnel it dials, so a forwarded port is the
// container's own localhost. Config.NetworkMode "host" shares the host's
// network instead (AgentURL as given; every workspace then reaches the
// host's services and the others': one trusted user only); another
// network's name uses that network with the agent socket, and without the
// firewall rules. The engine must run on this host (the socket is a bind
// mount; the rules are this host's).
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
// User: the container starts as root with only the capabilities becoming
// another user takes (CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID; every
// other one dropped, NET_RAW included), and the supervisor becomes the
// workspace user (the image's USER, else dev8; an image that does not know
// the name runs as uid 1000 all the same, never as root) before anything
// else, after handing /workspace and the home to them; its capabilities
// are gone then, and no-new-privileges keeps them gone: see
// Config.WorkspaceUser and workspaceuser.BecomeWorkspaceUser
// (internal/supervisor/workspaceuser).
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
// Limits: Spec.CPUCores → NanoCPUs (at most the engine's CPUs: a bigger
// size gets the whole machine), Spec.MemoryGB → Memory (swap no more
// than memory), Config.PidsLimit → PidsLimit; never privileged,
// no-new-privileges, restart policy "no" (the lifecycle decides whether a
// workspace that stopped on its own comes back). Spec.StorageGB is not
// enforced (volume quotas need a storage driver with project quotas).
//
// Images: Create pulls a missing image (unless Config.NoPull), once however
// many Creates want it at the same time (see pullCoordinator). A pull the
// registry answers "no such repository, tag or manifest" (or denies) is a
// permanent error naming the image; one that failed otherwise (the
// registry unreachable or answering 5xx, a timeout, DNS) is not, and the
// lifecycle retries the Create.
//
// Files: docker.go (Config, New, Close), create.go (Create and the
// container's configuration), network.go and firewall.go (the isolated
// network and the host's rules), env.go (the supervisor's environment),
// inject.go (copying the supervisor in), startstop.go (Start, Stop, Delete),
// inspect.go (Inspect, List, exit reasons), events.go (NotifyExits),
// image.go and pull.go (images, pull failures, the pull coordinator).
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/docker/docker/client"

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
	// AgentTokenPath is where the agent token of the next start is copied
	// (root's, 0400); the supervisor removes it once read.
	AgentTokenPath = "/.dev8/agent-token"
	// DefaultWorkspaceUser is the user Dev8's images define (uid 1000).
	DefaultWorkspaceUser = "dev8"
)

// LabelSpec holds a hash of the Spec a container was created from.
const LabelSpec = "dev8.spec"

// LabelCodeServer on an image gives the path of its code-server executable.
const LabelCodeServer = "dev8.code-server"

// AgentSocketDir is where the agent socket's directory is mounted (see
// runtime.Spec.AgentSocket).
const AgentSocketDir = "/run/dev8-agent"

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
	// BuiltHere holds the references that are built on this machine (make
	// images: Dev8's own template images under their default names) and
	// never pulled: a registry's image of the same name is somebody
	// else's. Create refuses one that is missing, saying how to build it.
	BuiltHere map[string]bool
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
	// drops to the user for good: see workspaceuser.BecomeWorkspaceUser
	// (internal/supervisor/workspaceuser). An image without that user (a
	// bare busybox) runs its workspace as uid 1000, never as root.
	WorkspaceUser string
	// NetworkMode of every container. Default IsolatedNetwork: see the
	// package doc. "host" shares the host's network with every workspace:
	// they then reach the host's services and each other (only for a
	// single trusted user).
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
	cpus      int // the engine's, once asked: see engineCPUs
	// netName and bridgeName are the isolated network's and its bridge's
	// names (IsolatedNetwork and IsolatedBridge; tests use their own).
	netName, bridgeName string
	// firewallSet holds the bridges whose host rules ensureNetwork set.
	firewallSet map[string]bool
	pulls       *pullCoordinator
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
		cfg.NetworkMode = IsolatedNetwork
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
	log := cfg.Logger.With("runtime", "docker")
	if cfg.NetworkMode == "host" {
		log.Warn("workspaces share the host's network: each reaches the host's services and the others' (only for a single trusted user; the default network isolates them)", "network", cfg.NetworkMode)
	}
	return &Runtime{
		cfg:         cfg,
		cli:         cli,
		log:         log,
		binSize:     fi.Size(),
		stopped:     map[string]bool{},
		newVolume:   map[string]bool{},
		netName:     IsolatedNetwork,
		bridgeName:  IsolatedBridge,
		firewallSet: map[string]bool{},
		pulls:       newPullCoordinator(cli, log),
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

// Close stops the event watcher NotifyExits started, if any, and the image
// pulls running, and closes the engine client (Config.Client included).
func (r *Runtime) Close() error {
	r.mu.Lock()
	cancel, done := r.watchCancel, r.watchDone
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	r.pulls.close()
	return r.cli.Close()
}

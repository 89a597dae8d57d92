// Package kubernetes is the runtime that runs each workspace as a pod on a
// Kubernetes cluster (AKS, EKS, GKE, on-prem), over client-go.
//
// Per environment <id> it manages, in Config.Namespace, objects named
// dev8-<id> (the id lower-case, "_" written "-"):
//
//	Secret                 the instance's record: the Spec it was created from
//	                       (spec.json), the supervisor's environment (env.*
//	                       keys) and this start's agent token. It exists from
//	                       Create to Delete: it is what Inspect and List find.
//	PersistentVolumeClaim  the persistent storage: /workspace and the home
//	                       directory (sub-paths of one volume); kept by Stop,
//	                       removed by Delete
//	Pod                    the compute, made by Start from the Secret and
//	                       removed by Stop
//
// and one NetworkPolicy per namespace (dev8-workspaces, netpol.go). Every
// object carries the labels dev8.managed=true, dev8.installation,
// dev8.environment and dev8.user, so List (and an operator with kubectl -l
// dev8.managed=true) finds them after a restart of the server; the PVC and
// the Pod are owned by the Secret (owner references), so deleting the
// Secret by hand lets the cluster's garbage collector remove the rest.
//
// Why a bare Pod rather than a 1-replica StatefulSet: a workspace's compute
// exists exactly while Dev8 wants it running, and the lifecycle, not a
// controller, decides whether one that stopped comes back. A StatefulSet
// would restart a crashed workspace behind the lifecycle's back (hiding
// OOMKilled behind CrashLoopBackOff), and scaling it to zero is a Stop with
// one more object to keep in step. The pod runs with restartPolicy Never:
// a workspace that exits, is OOM-killed or evicted stays Failed, with
// Kubernetes' reason, until the next Start or Stop.
//
// The supervisor needs no custom workspace image (bootstrap.go). By
// default (SupervisorFromServer) the workspace container's command is a
// small /bin/sh script that downloads the supervisor from the server into
// an emptyDir, checks its SHA-256 and execs it: the pod has no init
// container, so it runs as soon as a bare pod of its image would (each
// init container costs about a second: the kubelet sees it exit at its
// next relist). With SupervisorFromImage, for images without a shell or
// curl/wget, an init container of Config.SupervisorImage (the Dev8 image,
// or the small supervisor image `make supervisor-image` builds) copies its
// binary into that emptyDir instead. The supervisor dials the server at
// Spec.AgentURL (the access URL, or an in-cluster service URL: see Config)
// and reaches nothing else of Dev8's.
//
// Security: Pod Security "restricted" by default: runAsNonRoot as
// Config.WorkspaceUID (1000, Dev8's images' dev8), allowPrivilegeEscalation
// false, every capability dropped, seccomp RuntimeDefault, no service
// account token, no service links; the volume is handed to the user by
// fsGroup. The NetworkPolicy refuses every connection into a workspace pod
// (the supervisor dials out, so none is needed: no workspace reaches
// another), and lets workspaces out to the internet but not to private,
// link-local (cloud metadata) or other Config.DenyEgress ranges, except
// to the Dev8 server (Config.ServerEgress) and the cluster's DNS. A
// cluster whose network plugin ignores NetworkPolicies (plain bridge CNI,
// kubenet) does not enforce it: see the README.
//
// Waiting: a pod informer (watch.go) keeps every Dev8 pod of the
// installation in memory; Start and Stop wait on it, and NotifyExits is fed
// by it, so nothing polls.
//
// Files: kubernetes.go (Config, New, names), objects.go (the objects'
// specs), lifecycle.go (Create, Start, Stop, Delete), inspect.go (Inspect,
// List, pod states and their reasons), watch.go (the informer, waiting,
// NotifyExits), netpol.go (the NetworkPolicy).
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/runtime"
)

// Paths inside every workspace pod.
const (
	// WorkspaceDir is where the environment's volume (sub-path workspace)
	// is mounted.
	WorkspaceDir = "/workspace"
	// DefaultHomeDir is the workspace user's home (sub-path home of the
	// same volume).
	DefaultHomeDir = "/home/dev8"
	// SupervisorDir holds the supervisor binary the init container copies.
	SupervisorDir = "/.dev8/bin"
	// SupervisorPath is the supervisor's path in the workspace container.
	SupervisorPath = SupervisorDir + "/dev8"
	// AgentTokenDir holds this start's agent token (file agent-token).
	AgentTokenDir = "/.dev8/agent"
	// RunDir is a memory-backed directory of the pod's own, where
	// code-server listens on a unix socket.
	RunDir = "/run/dev8"
	// CodeServerSocket is code-server's address in a workspace pod.
	CodeServerSocket = "unix:" + RunDir + "/code-server.sock"
	// DefaultCodeServer is where Dev8's images have code-server.
	DefaultCodeServer = "/opt/code-server/node_modules/.bin/code-server"
)

// DefaultNamespace is the namespace workspaces go to by default.
const DefaultNamespace = "dev8-workspaces"

// Config configures a kubernetes Runtime.
type Config struct {
	// Client talks to the cluster. Default: one from Kubeconfig.
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file's path; Context, if set, one of its
	// contexts. Both empty: the in-cluster configuration (the server runs
	// in a pod), else $KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	Context    string
	// Namespace the workspaces' objects live in. It must exist (the
	// server's RBAC is limited to it). Default DefaultNamespace.
	Namespace string
	// StorageClass of the workspaces' volumes; empty: the cluster's
	// default.
	StorageClass string
	// SupervisorFrom is how the supervisor gets into a workspace pod:
	// SupervisorFromServer (the default: fetched from the server at start,
	// no init container) or SupervisorFromImage (copied from
	// SupervisorImage by an init container; any workspace image).
	SupervisorFrom SupervisorSource
	// SupervisorImage is the image whose /dev8-supervisor (or dev8) the
	// init container copies into every workspace. Required with
	// SupervisorFromImage.
	SupervisorImage string
	// AgentURL, if set, replaces Spec.AgentURL: where pods reach the server
	// (an in-cluster service URL when the server runs in the cluster).
	AgentURL string
	// DefaultImage is used when Spec.Image is empty.
	DefaultImage string
	// ImageRefs maps a template's image name to the reference to run, as
	// on the docker runtime.
	ImageRefs map[string]string
	// ImagePullPolicy of the workspace and init containers. Default
	// IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// ImagePullSecrets names Secrets in Namespace for private registries.
	ImagePullSecrets []string
	// NodeSelector, Tolerations and RuntimeClass place every workspace
	// (a GPU node pool, gVisor or Kata as the runtime class); a spec's
	// own NodeSelector (its instance type's) is added, winning for a
	// label both name.
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	RuntimeClass string
	// Resources are extended resources every workspace asks for, as
	// requests and limits ("nvidia.com/gpu": "1"); a spec's own Resources
	// (its instance type's) are added, winning for a name both have.
	Resources map[string]string
	// CPURequestRatio is the share of its size's CPUs a workspace
	// requests, its limit staying the size: 0.25 lets the scheduler pack
	// four mostly idle workspaces where one fits with a guarantee. 0 means
	// 1 (requests equal limits). Memory is always requested whole: a node
	// out of memory kills.
	CPURequestRatio float64
	// CodeServer is code-server's path in the workspace images. Default
	// DefaultCodeServer; "none": workspaces have no IDE.
	CodeServer string
	// HomeDir is the workspace user's home. Default DefaultHomeDir.
	HomeDir string
	// WorkspaceUID is the uid (and gid) workspaces run as. Default 1000.
	WorkspaceUID int64
	// ExtraEnv is added to every workspace's environment ("KEY=value").
	ExtraEnv []string
	// ServerEgress are the CIDRs where the Dev8 server is reached from
	// workspaces when it runs outside the cluster (or behind an address
	// in a denied range); ServerPodLabels select its pods when it runs
	// inside. Both open the NetworkPolicy's egress rule to them.
	ServerEgress    []string
	ServerPodLabels map[string]string
	// ServerNamespace, if set, is the namespace of the pods
	// ServerPodLabels select (InClusterNamespace when the server runs in
	// the cluster); empty, pods of any namespace with those labels.
	ServerNamespace string
	// DenyEgress are the ranges workspaces may not reach. Default
	// DefaultDenyEgress.
	DenyEgress []string
	// Installation names this Dev8 installation (runtime.LabelInstallation).
	// Default "default".
	Installation string
	// StopTimeout is the pod's termination grace period. Default 10s; the
	// supervisor is told half of it.
	StopTimeout time.Duration
	// ScheduleTimeout is how long Start waits for a pod no node can take
	// (Unschedulable) before it fails. Default 5 minutes.
	ScheduleTimeout time.Duration
	// SupervisorConnected, if set, returns nil once environmentID's
	// supervisor has connected to this server by a tunnel that arrived at
	// or after since (the server's tunnel.Registry.AwaitSince), or an
	// error once ctx ends. Start then takes the pod it made to run as soon
	// as its supervisor dials in: the kubelet reports a started container
	// only at its next look at its containers (a relist, every second),
	// so waiting for the pod's Running status alone costs up to a second
	// per start. Without it, or when the supervisor dials another server,
	// Start waits for the pod's status.
	SupervisorConnected func(ctx context.Context, environmentID string, since time.Time) error
	Logger              *slog.Logger
}

// DefaultDenyEgress: private networks (the cluster's pods, services and
// nodes, the company network), carrier-grade NAT, link-local (the clouds'
// metadata endpoints at 169.254.169.254) and their IPv6 counterparts.
var DefaultDenyEgress = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
	"fc00::/7", "fe80::/10",
}

// Runtime runs workspaces as Kubernetes pods. See the package doc.
type Runtime struct {
	cfg Config
	cli kubernetes.Interface
	log *slog.Logger

	pods *podWatch

	mu sync.Mutex
	// stopped holds environments this Runtime stopped (or deleted) since
	// their last Start: their pod's disappearance is not an exit.
	stopped map[string]bool
	// newClaim holds environments whose volume claim a Create made but
	// whose Create failed after that: the retry must still report the
	// storage as new (runtime.Instance.StorageCreated).
	newClaim map[string]bool
	notify   []chan<- string
	// netpolSet: the NetworkPolicy was made or checked.
	netpolSet bool
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.ExitNotifier = (*Runtime)(nil)
	_ runtime.NodePlacer   = (*Runtime)(nil)
)

// PlacesOnNodes implements runtime.NodePlacer: the scheduler gives a
// workspace the extended resources and node labels its spec asks for.
func (r *Runtime) PlacesOnNodes() bool { return true }

// New returns a Runtime and starts its pod informer; Close stops it. It
// does not wait for the cluster: see Ping.
func New(cfg Config) (*Runtime, error) {
	switch cfg.SupervisorFrom {
	case "":
		cfg.SupervisorFrom = SupervisorFromServer
	case SupervisorFromServer, SupervisorFromImage:
	default:
		return nil, fmt.Errorf("kubernetes: supervisor from %q: want %s or %s", cfg.SupervisorFrom, SupervisorFromServer, SupervisorFromImage)
	}
	if cfg.SupervisorFrom == SupervisorFromImage && cfg.SupervisorImage == "" {
		return nil, errors.New("kubernetes: no supervisor image (--kubernetes-supervisor-image) to copy the supervisor from (--kubernetes-supervisor-from image)")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Installation == "" {
		cfg.Installation = "default"
	}
	switch cfg.ImagePullPolicy {
	case "":
		cfg.ImagePullPolicy = corev1.PullIfNotPresent
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return nil, fmt.Errorf("kubernetes: image pull policy %q: want Always, IfNotPresent or Never", cfg.ImagePullPolicy)
	}
	if cfg.CodeServer == "" {
		cfg.CodeServer = DefaultCodeServer
	} else if cfg.CodeServer == "none" {
		cfg.CodeServer = ""
	}
	if cfg.HomeDir == "" {
		cfg.HomeDir = DefaultHomeDir
	}
	if cfg.WorkspaceUID <= 0 {
		cfg.WorkspaceUID = 1000
	}
	if cfg.DenyEgress == nil {
		cfg.DenyEgress = DefaultDenyEgress
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.ScheduleTimeout <= 0 {
		cfg.ScheduleTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := placement.CheckResources(cfg.Resources); err != nil {
		return nil, fmt.Errorf("kubernetes: --kubernetes-resources: %w", err)
	}
	if err := placement.CheckNodeSelector(cfg.NodeSelector); err != nil {
		return nil, fmt.Errorf("kubernetes: --kubernetes-node-selector: %w", err)
	}
	switch r := cfg.CPURequestRatio; {
	case r == 0:
		cfg.CPURequestRatio = 1
	case r < 0.01 || r > 1 || math.IsNaN(r):
		return nil, fmt.Errorf("kubernetes: CPU request ratio %v: want a share from 0.01 to 1", r)
	}
	cli := cfg.Client
	if cli == nil {
		rc, err := RESTConfig(cfg.Kubeconfig, cfg.Context)
		if err != nil {
			return nil, err
		}
		if cli, err = kubernetes.NewForConfig(rc); err != nil {
			return nil, fmt.Errorf("kubernetes: client: %w", err)
		}
	}
	log := cfg.Logger.With("runtime", "kubernetes", "namespace", cfg.Namespace)
	r := &Runtime{cfg: cfg, cli: cli, log: log, stopped: map[string]bool{}, newClaim: map[string]bool{}}
	r.pods = startPodWatch(cli, cfg.Namespace, r.selector(), log, r.podChanged)
	return r, nil
}

// RESTConfig is the client configuration for kubeconfig and context: both
// empty, the in-cluster one when the process runs in a pod, else the
// default loading rules ($KUBECONFIG, ~/.kube/config).
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: cluster configuration: %w", err)
	}
	return rc, nil
}

// PullPolicy is s as an image pull policy; empty is the default.
func PullPolicy(s string) corev1.PullPolicy { return corev1.PullPolicy(s) }

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "kubernetes" }

// Namespace is where the Runtime's objects are.
func (r *Runtime) Namespace() string { return r.cfg.Namespace }

// Client is the Runtime's cluster client.
func (r *Runtime) Client() kubernetes.Interface { return r.cli }

// Close stops the pod informer.
func (r *Runtime) Close() error {
	r.pods.stop()
	return nil
}

// Environment ids become parts of DNS-1123 names: lower-case letters,
// digits, "_" and "-", short enough for "dev8-" and a 63-byte label.
var validID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,56}[a-z0-9]$`)

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid environment id %q (lower-case letters, digits, _ and -, at most 58)", id)
	}
	return nil
}

// ObjectName is the name of an environment's Secret, PVC and Pod.
func ObjectName(environmentID string) string {
	return "dev8-" + strings.ReplaceAll(environmentID, "_", "-")
}

// labels are the labels of an environment's objects.
func (r *Runtime) labels(environmentID, userID string) map[string]string {
	return map[string]string{
		runtime.LabelManaged:      "true",
		runtime.LabelInstallation: r.cfg.Installation,
		runtime.LabelEnvironment:  environmentID,
		runtime.LabelUser:         userID,
	}
}

// selector selects every object of this installation.
func (r *Runtime) selector() string {
	return runtime.LabelManaged + "=true," + runtime.LabelInstallation + "=" + r.cfg.Installation
}

// ours reports whether labels are those of environmentID's objects made by
// this installation (an object of the same name made by someone else is
// not touched).
func (r *Runtime) ours(labels map[string]string, environmentID string) bool {
	return labels[runtime.LabelManaged] == "true" && labels[runtime.LabelInstallation] == r.cfg.Installation &&
		labels[runtime.LabelEnvironment] == environmentID
}

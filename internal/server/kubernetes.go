package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8s "k8s.io/client-go/kubernetes"

	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/supervisorbin"
)

// DefaultKubernetesNamespace is where the kubernetes runtime's workspaces go.
const DefaultKubernetesNamespace = kubernetes.DefaultNamespace

// DefaultKubernetesSupervisorFrom is how the supervisor gets into a
// Kubernetes workspace by default: fetched from this server, which needs
// no image besides the workspace's and no init container (see
// kubernetes.SupervisorFromServer).
const DefaultKubernetesSupervisorFrom = string(kubernetes.SupervisorFromServer)

// KubernetesConfig configures the kubernetes runtime (see
// runtime/kubernetes.Config, whose fields these are).
type KubernetesConfig struct {
	// Kubeconfig and Context choose the cluster; both empty: in-cluster,
	// else $KUBECONFIG or ~/.kube/config.
	Kubeconfig, Context string
	// Namespace of the workspaces' objects (default dev8-workspaces).
	Namespace string
	// StorageClass of the workspaces' volumes (default: the cluster's).
	StorageClass string
	// SupervisorFrom is "server" (default: workspaces fetch the
	// supervisor from this server) or "image" (copied from
	// SupervisorImage by an init container).
	SupervisorFrom string
	// SupervisorImage is the image the supervisor is copied from with
	// SupervisorFrom "image".
	SupervisorImage string
	// AgentURL, if set, is where workspace pods reach this server (an
	// in-cluster service URL) instead of Config.AgentURL.
	AgentURL string
	// ServerEgress are addresses or CIDRs where workspaces reach this
	// server (NetworkPolicy egress) when they are in a denied range.
	ServerEgress []string
	// ServerPodLabels select this server's pods, when it runs in the
	// cluster, for the same rule.
	ServerPodLabels map[string]string
	NodeSelector    map[string]string
	// Tolerations let every workspace onto tainted nodes (a GPU pool
	// tainted nvidia.com/gpu:NoSchedule); placement.ParseTolerations
	// reads them in kubectl's taint syntax.
	Tolerations  []corev1.Toleration
	RuntimeClass string
	// ImagePullSecrets name Secrets of Namespace.
	ImagePullSecrets []string
	// ImagePullPolicy: Always, IfNotPresent (default) or Never.
	ImagePullPolicy string
	// Resources are extended resources every workspace asks for
	// ("nvidia.com/gpu": "1").
	Resources map[string]string
	// CPURequestRatio is the share of their CPUs workspaces request.
	CPURequestRatio float64
}

func newKubernetesRuntime(ctx context.Context, cfg Config, deps runtimeDeps) (*kubernetes.Runtime, error) {
	k := cfg.Kubernetes
	installation, err := deps.db.InstallationSecret(ctx, "installation-id", 8)
	if err != nil {
		return nil, err
	}
	from := kubernetes.SupervisorSource(k.SupervisorFrom)
	if from == "" {
		from = kubernetes.SupervisorFromServer
	}
	if from == kubernetes.SupervisorFromServer {
		// Said now, not at the first workspace's start.
		if _, err := servedSupervisor(cfg); err != nil {
			return nil, fmt.Errorf("kubernetes runtime: workspaces fetch their supervisor from this server (--kubernetes-supervisor-from server), but this server has no %s supervisor to serve: %w; build dev8 with make build, or use --kubernetes-supervisor-from image", supervisorbin.Platform, err)
		}
	}
	cli, supervisorImage, err := kubernetesClient(ctx, k, from)
	if err != nil {
		return nil, err
	}
	rt, err := kubernetes.New(kubernetes.Config{
		Client:           cli,
		Kubeconfig:       k.Kubeconfig,
		Context:          k.Context,
		Namespace:        k.Namespace,
		StorageClass:     k.StorageClass,
		SupervisorFrom:   from,
		SupervisorImage:  supervisorImage,
		AgentURL:         k.AgentURL,
		ImageRefs:        deps.imageRefs,
		ImagePullPolicy:  kubernetes.PullPolicy(k.ImagePullPolicy),
		ImagePullSecrets: k.ImagePullSecrets,
		NodeSelector:     k.NodeSelector,
		Tolerations:      k.Tolerations,
		RuntimeClass:     k.RuntimeClass,
		Resources:        k.Resources,
		CPURequestRatio:  k.CPURequestRatio,
		ServerEgress:     k.ServerEgress,
		ServerPodLabels:  k.ServerPodLabels,
		ServerNamespace:  kubernetes.InClusterNamespace(),
		ExtraEnv:         cfg.SupervisorEnv,
		Installation:     hex.EncodeToString(installation),
		Logger:           cfg.Logger,
		// A start is done when the pod's supervisor dials in here, not
		// only at the kubelet's next look at the pod.
		SupervisorConnected: deps.tunnels.AwaitSince,
	})
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rt.Ping(pingCtx); err != nil {
		rt.Close()
		return nil, fmt.Errorf("kubernetes runtime: %w", err)
	}
	return rt, nil
}

// kubernetesClient is the runtime's cluster client, and the image its
// supervisor is copied from when from is SupervisorFromImage:
// --kubernetes-supervisor-image, else, when the server runs in the cluster
// it manages, its own image (so supervisor and server are always one
// version).
func kubernetesClient(ctx context.Context, k KubernetesConfig, from kubernetes.SupervisorSource) (k8s.Interface, string, error) {
	rc, err := kubernetes.RESTConfig(k.Kubeconfig, k.Context)
	if err != nil {
		return nil, "", err
	}
	cli, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: client: %w", err)
	}
	if k.SupervisorImage != "" || from != kubernetes.SupervisorFromImage {
		return cli, k.SupervisorImage, nil
	}
	if k.Kubeconfig != "" || k.Context != "" || kubernetes.InClusterNamespace() == "" {
		return nil, "", errors.New("kubernetes: no supervisor image (--kubernetes-supervisor-image) for --kubernetes-supervisor-from image; a server running in the cluster it manages uses its own image")
	}
	readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	img, err := kubernetes.OwnImage(readCtx, cli, "dev8")
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: no --kubernetes-supervisor-image, and the server's own image is unknown (its account needs get on pods in its namespace: deploy/kubernetes/rbac.yaml): %w", err)
	}
	return cli, img, nil
}

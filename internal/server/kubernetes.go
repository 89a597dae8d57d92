package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/store"
)

// DefaultKubernetesNamespace is where the kubernetes runtime's workspaces go.
const DefaultKubernetesNamespace = kubernetes.DefaultNamespace

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
	// SupervisorImage is the image the supervisor is copied from.
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
}

func newKubernetesRuntime(ctx context.Context, cfg Config, db *store.DB, imageRefs map[string]string) (*kubernetes.Runtime, error) {
	k := cfg.Kubernetes
	installation, err := db.InstallationSecret(ctx, "installation-id", 8)
	if err != nil {
		return nil, err
	}
	rt, err := kubernetes.New(kubernetes.Config{
		Kubeconfig:       k.Kubeconfig,
		Context:          k.Context,
		Namespace:        k.Namespace,
		StorageClass:     k.StorageClass,
		SupervisorImage:  k.SupervisorImage,
		AgentURL:         k.AgentURL,
		ImageRefs:        imageRefs,
		ImagePullPolicy:  kubernetes.PullPolicy(k.ImagePullPolicy),
		ImagePullSecrets: k.ImagePullSecrets,
		NodeSelector:     k.NodeSelector,
		Tolerations:      k.Tolerations,
		RuntimeClass:     k.RuntimeClass,
		Resources:        k.Resources,
		ServerEgress:     k.ServerEgress,
		ServerPodLabels:  k.ServerPodLabels,
		ExtraEnv:         cfg.SupervisorEnv,
		Installation:     hex.EncodeToString(installation),
		Logger:           cfg.Logger,
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

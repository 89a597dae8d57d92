package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Right is one thing the runtime does in its namespace: a verb on a
// resource of an API group ("" is the core group).
type Right struct {
	Group, Resource, Verb string
}

func (r Right) String() string {
	if r.Group == "" {
		return r.Verb + " " + r.Resource
	}
	return r.Verb + " " + r.Resource + "." + r.Group
}

// Rights are everything the runtime asks of the API server, all in its
// namespace: deploy/kubernetes/rbac.yaml grants exactly these, and Ping
// checks them at start, so a missing grant is one clear error when the
// server starts rather than a 403 at some user's first create.
var Rights = []Right{
	{"", "pods", "get"}, {"", "pods", "list"}, {"", "pods", "watch"}, {"", "pods", "create"}, {"", "pods", "delete"},
	{"", "secrets", "get"}, {"", "secrets", "list"}, {"", "secrets", "create"}, {"", "secrets", "update"}, {"", "secrets", "patch"}, {"", "secrets", "delete"},
	{"", "persistentvolumeclaims", "get"}, {"", "persistentvolumeclaims", "create"}, {"", "persistentvolumeclaims", "delete"},
	{"networking.k8s.io", "networkpolicies", "get"}, {"networking.k8s.io", "networkpolicies", "create"}, {"networking.k8s.io", "networkpolicies", "update"},
}

// Ping reports whether the cluster answers, the namespace is there and the
// server's account has every right of Rights in it. The namespace is read
// when the account may (a namespace-scoped Role cannot grant that: then
// the NetworkPolicy's put in place instead, which fails in a namespace that
// does not exist).
func (r *Runtime) Ping(ctx context.Context) error {
	var missing []string
	for _, want := range Rights {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: r.cfg.Namespace, Group: want.Group, Resource: want.Resource, Verb: want.Verb},
		}}
		got, err := r.cli.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("kubernetes: the API server: %w", err)
		}
		if !got.Status.Allowed {
			missing = append(missing, want.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubernetes: the server's account may not %s in namespace %s: grant it the Role of deploy/kubernetes/rbac.yaml there (see /docs/runtimes#kubernetes)",
			strings.Join(missing, ", "), r.cfg.Namespace)
	}
	_, err := r.cli.CoreV1().Namespaces().Get(ctx, r.cfg.Namespace, metav1.GetOptions{})
	switch {
	case err == nil:
	case apierrors.IsForbidden(err):
		err = r.ensureNetworkPolicy(ctx)
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes: namespace %s does not exist (the server does not make it): %w", r.cfg.Namespace, err)
		}
		return err
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes: namespace %s does not exist (the server does not make it): %w", r.cfg.Namespace, err)
	default:
		return fmt.Errorf("kubernetes: namespace %s: %w", r.cfg.Namespace, err)
	}
	return nil
}

// serviceAccountNamespace is the file where a pod's namespace is mounted
// with its service account.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// InClusterNamespace is the namespace of the pod this process runs in, or
// "" outside a pod.
func InClusterNamespace() string {
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// OwnImage is the image of the container named container (or of the only
// container) of the pod this process runs in, which it reads from the API
// server: a server deployed in the cluster copies its workspaces'
// supervisor out of its own image, so the two are always the same
// version. It needs the right to get pods in its own namespace.
func OwnImage(ctx context.Context, cli kubernetes.Interface, container string) (string, error) {
	ns := InClusterNamespace()
	if ns == "" {
		return "", errors.New("not running in a Kubernetes pod")
	}
	// A pod's host name is its name unless its spec sets another.
	name, err := os.Hostname()
	if err != nil {
		return "", err
	}
	pod, err := cli.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read this server's own pod %s/%s: %w", ns, name, err)
	}
	return containerImage(pod, container)
}

func containerImage(pod *corev1.Pod, container string) (string, error) {
	cs := pod.Spec.Containers
	if len(cs) == 1 {
		return cs[0].Image, nil
	}
	for _, c := range cs {
		if c.Name == container {
			return c.Image, nil
		}
	}
	return "", fmt.Errorf("pod %s has %d containers and none is named %q", pod.Name, len(cs), container)
}

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/runtime"
)

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(ctx context.Context, environmentID string) (runtime.Instance, error) {
	if err := checkID(environmentID); err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: inspect: %w: %w", runtime.ErrNotFound, err)
	}
	sec, err := r.secret(ctx, environmentID)
	if errors.Is(err, errNoInstance) {
		return runtime.Instance{}, fmt.Errorf("kubernetes: inspect %s: %w", environmentID, runtime.ErrNotFound)
	}
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: inspect %s: %w", environmentID, err)
	}
	pod, err := r.livePod(ctx, environmentID)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: inspect %s: %w", environmentID, err)
	}
	return r.instance(sec, pod), nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	opts := metav1.ListOptions{LabelSelector: r.selector()}
	secs, err := r.cli.CoreV1().Secrets(r.cfg.Namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list: secrets: %w", classify(err))
	}
	pods, err := r.cli.CoreV1().Pods(r.cfg.Namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list: pods: %w", classify(err))
	}
	byName := map[string]*corev1.Pod{}
	for i := range pods.Items {
		byName[pods.Items[i].Name] = &pods.Items[i]
	}
	out := make([]runtime.Instance, 0, len(secs.Items))
	for i := range secs.Items {
		sec := &secs.Items[i]
		id := sec.Labels[runtime.LabelEnvironment]
		if id == "" || sec.Name != ObjectName(id) {
			continue
		}
		pod := byName[sec.Name]
		if pod != nil && !r.ours(pod.Labels, id) {
			pod = nil
		}
		out = append(out, r.instance(sec, pod))
	}
	return out, nil
}

// instance is the runtime's view of an environment from its Secret and its
// pod (nil: none).
func (r *Runtime) instance(sec *corev1.Secret, pod *corev1.Pod) runtime.Instance {
	id := sec.Labels[runtime.LabelEnvironment]
	inst := runtime.Instance{
		EnvironmentID: id,
		Ref:           r.cfg.Namespace + "/" + sec.Name,
		State:         runtime.StateStopped,
		WorkspaceDir:  WorkspaceDir,
	}
	if r.cfg.CodeServer != "" {
		inst.IDEAddress = CodeServerSocket
	}
	wanted := sec.Annotations[AnnotationRunning] == "true" && !r.stoppedHere(id)
	switch {
	case pod != nil && live(sec, pod):
		inst.State = runtime.StateRunning
		// Every run has a pod of its own, made when it started. (The
		// container's start time comes with the kubelet's next report,
		// which a Start may not have waited for: see live.)
		inst.StartedAt = pod.CreationTimestamp.Time
	case pod != nil && pod.DeletionTimestamp != nil && wanted:
		// Whatever it ended with, the deletion is why.
		inst.ExitReason = "its pod is being deleted by something other than Dev8 (kubectl delete, a node drain)"
	case pod != nil && (ended(pod) || exited(pod)):
		inst.ExitReason = exitReason(pod)
	case pod == nil && wanted:
		inst.ExitReason = "its pod was deleted by something other than Dev8 (kubectl delete, a node drain, the node lost)"
	}
	return inst
}

func (r *Runtime) stoppedHere(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped[id]
}

// running: the pod runs and its workspace container is up (not being
// deleted).
func running(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || exited(p) {
		return false
	}
	st := containerStatus(p, containerWorkspace)
	return st != nil && st.State.Running != nil
}

// exited: the workspace container has terminated, though the pod's phase
// may not say so yet. The kubelet records the container's end first and
// the pod's phase (Failed) in a later status update: a look between the
// two must still find why it ended, not a pod that merely "stopped". A
// dev8-home container beside it (SupervisorFromServer) that failed counts
// too: the workspace's Bootstrap waits for its word, which will not come.
func exited(p *corev1.Pod) bool {
	if st := containerStatus(p, containerWorkspace); st != nil && st.State.Terminated != nil {
		return true
	}
	st := containerStatus(p, containerHome)
	return st != nil && st.State.Terminated != nil && st.State.Terminated.ExitCode != 0
}

// fetches: the pod's workspace container runs Bootstrap
// (SupervisorFromServer).
func fetches(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == containerWorkspace {
			return len(c.Command) > 3 && c.Command[0] == "/bin/sh" && c.Command[3] == "dev8-bootstrap"
		}
	}
	return false
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// Waiting reasons of a container that will not start by waiting longer.
var imageFailures = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
}

var configFailures = map[string]bool{
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// startFailure is why a starting pod will not run (nil: it may yet): it
// ended, or a container cannot be made. Failures of the workspace's image
// that no retry mends (a name that is not an image, an image the node may
// not pull) are permanent.
func startFailure(p *corev1.Pod, image string) error {
	if ended(p) || exited(p) {
		err := fmt.Errorf("the workspace ended as it started: %s", exitReason(p))
		if _, permanent, ok := fetchFailure(p); ok && permanent {
			return runtime.Permanent(err)
		}
		return err
	}
	for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		w := st.State.Waiting
		if w == nil {
			continue
		}
		what := "the workspace image " + image
		if st.Name == containerSupervisor {
			what = "the supervisor image " + st.Image
		}
		switch {
		case imageFailures[w.Reason]:
			err := fmt.Errorf("%s cannot be pulled (%s): %s", what, w.Reason, w.Message)
			if w.Reason != "ImagePullBackOff" && w.Reason != "ErrImagePull" || notFound(w.Message) {
				return runtime.Permanent(err)
			}
			return err
		case configFailures[w.Reason]:
			return runtime.Permanent(fmt.Errorf("the container of %s cannot be created (%s): %s", what, w.Reason, w.Message))
		}
	}
	return nil
}

// notFound: a registry's answer that the image is not there (or not for
// this node), which no retry changes.
func notFound(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"not found", "manifest unknown", "name unknown", "repository does not exist", "unauthorized", "denied"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// unschedulable is the scheduler's reason when no node can take the pod.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}
	return "", false
}

// insufficient finds the resources the scheduler found no node with
// enough of ("1 Insufficient nvidia.com/gpu", "2 Insufficient memory").
var insufficient = regexp.MustCompile(`Insufficient ([A-Za-z0-9./_-]+)`)

// schedulingProblem says in words why no node can take p, from the
// scheduler's message: the resources no node has free (a GPU workspace on
// a cluster whose GPUs are taken or absent), labels no node has, taints it
// does not tolerate; the scheduler's own words follow.
func schedulingProblem(p *corev1.Pod, msg string) string {
	var why []string
	seen := map[string]bool{}
	for _, m := range insufficient.FindAllStringSubmatch(msg, -1) {
		if name := strings.TrimSuffix(m[1], "."); !seen[name] {
			seen[name] = true
			why = append(why, "no node has a free "+name)
		}
	}
	if strings.Contains(msg, "node affinity/selector") && len(p.Spec.NodeSelector) > 0 {
		why = append(why, "no node has the labels "+placement.Describe(p.Spec.NodeSelector))
	}
	if strings.Contains(msg, "untolerated taint") {
		why = append(why, "nodes have taints the workspace does not tolerate (--kubernetes-tolerations)")
	}
	msg = strings.TrimSpace(msg)
	if len(why) == 0 {
		return msg
	}
	return strings.Join(why, "; ") + " (" + msg + ")"
}

// exitReason says why an ended pod ended, in words for the environment's
// status reason.
func exitReason(p *corev1.Pod) string {
	if p.Status.Reason == "Evicted" {
		return "evicted by Kubernetes: " + strings.TrimSpace(p.Status.Message)
	}
	if reason, _, ok := fetchFailure(p); ok {
		return reason
	}
	for _, name := range []string{containerSupervisor, containerHome, containerWorkspace} {
		st := containerStatus(p, name)
		if st == nil || st.State.Terminated == nil {
			continue
		}
		t := st.State.Terminated
		switch {
		case name == containerSupervisor && t.ExitCode != 0:
			return fmt.Sprintf("the supervisor could not be installed from %s: exit code %d (%s) %s", st.Image, t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
		case name == containerHome && t.ExitCode != 0:
			return fmt.Sprintf("the image's home could not be copied into the home volume (image %s): exit code %d (%s) %s", st.Image, t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
		case name != containerWorkspace:
			continue
		}
		switch {
		case t.Reason == "OOMKilled":
			return "out of memory: the workspace used more memory than its size allows (OOMKilled)"
		case t.ExitCode == 0:
			return "the workspace's supervisor exited"
		default:
			reason := fmt.Sprintf("the workspace's supervisor exited with code %d", t.ExitCode)
			if t.Reason != "" && t.Reason != "Error" {
				reason += " (" + t.Reason + ")"
			}
			if msg := strings.TrimSpace(t.Message); msg != "" {
				reason += ": " + msg
			}
			return reason
		}
	}
	if p.Status.Message != "" {
		return strings.TrimSpace(p.Status.Reason + " " + p.Status.Message)
	}
	return "the pod ended (" + string(p.Status.Phase) + ")"
}

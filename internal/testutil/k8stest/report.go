package k8stest

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// A PodReport keeps the end of each container log (its last lines, and
// of those at most the last bytes): the end says why a container failed,
// and a test's output stays readable.
const (
	reportLogLines = 60
	reportLogBytes = 6 << 10
)

// PodReport describes the pods of namespace ns that selector selects (all
// its pods when empty), for a failed test's log: each pod's phase and
// conditions, each container's state, restarts and last end, the pod's
// events, and the end of each container's log (and of its previous run's,
// when it restarted). What cannot be read is said, not fatal: the report
// is written while a test fails.
func (c *Cluster) PodReport(ctx context.Context, ns, selector string) string {
	var b strings.Builder
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return fmt.Sprintf("the pods of %s (%s): %v\n", ns, selector, err)
	}
	if len(pods.Items) == 0 {
		fmt.Fprintf(&b, "no pods in %s (%s)\n", ns, selector)
	}
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s/%s: %s on %s, IP %s, created %s\n", ns, p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, p.CreationTimestamp.Format(time.RFC3339))
		for _, cd := range p.Status.Conditions {
			fmt.Fprintf(&b, "  condition %s=%s at %s %s %s\n", cd.Type, cd.Status, cd.LastTransitionTime.Format(time.RFC3339), cd.Reason, cd.Message)
		}
		statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
		for _, s := range statuses {
			fmt.Fprintf(&b, "  container %s: %s, ready %v, restarts %d", s.Name, containerState(s.State), s.Ready, s.RestartCount)
			if s.LastTerminationState.Terminated != nil {
				fmt.Fprintf(&b, ", last %s", containerState(s.LastTerminationState))
			}
			b.WriteString("\n")
		}
		b.WriteString(c.events(ctx, ns, p.Name))
		for _, s := range statuses {
			if s.RestartCount > 0 {
				fmt.Fprintf(&b, "  log of %s's previous run:\n%s", s.Name, c.logTail(ctx, ns, p.Name, s.Name, true))
			}
			fmt.Fprintf(&b, "  log of %s:\n%s", s.Name, c.logTail(ctx, ns, p.Name, s.Name, false))
		}
	}
	return b.String()
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.Format(time.RFC3339)
	case s.Terminated != nil:
		t := s.Terminated
		return fmt.Sprintf("terminated %s-%s, exit %d, %s %q", t.StartedAt.Format(time.RFC3339), t.FinishedAt.Format(time.RFC3339), t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
	case s.Waiting != nil:
		return fmt.Sprintf("waiting: %s %s", s.Waiting.Reason, s.Waiting.Message)
	}
	return "no state"
}

// events lists the events of pod name, oldest first.
func (c *Cluster) events(ctx context.Context, ns, name string) string {
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": name}.String()
	evs, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return fmt.Sprintf("  events: %v\n", err)
	}
	sort.SliceStable(evs.Items, func(i, j int) bool { return eventTime(evs.Items[i]).Before(eventTime(evs.Items[j])) })
	var b strings.Builder
	for _, e := range evs.Items {
		fmt.Fprintf(&b, "  event %s %s %s (x%d): %s\n", eventTime(e).Format(time.RFC3339), e.Type, e.Reason, max(e.Count, 1), e.Message)
	}
	return b.String()
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// logTail is the end of a container's log (its previous run's), indented.
func (c *Cluster) logTail(ctx context.Context, ns, pod, container string, previous bool) string {
	lines := int64(reportLogLines)
	rc, err := c.Client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: previous, TailLines: &lines, Timestamps: true}).Stream(ctx)
	if err != nil {
		return fmt.Sprintf("    (%v)\n", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Sprintf("    (%v)\n", err)
	}
	if len(data) == 0 {
		return "    (empty)\n"
	}
	if len(data) > reportLogBytes {
		data = append([]byte("…"), data[len(data)-reportLogBytes:]...)
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(string(data), "\n"), "\n", "\n    ") + "\n"
}

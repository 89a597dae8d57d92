package docker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

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

// engineCPUs is how many CPUs the engine has (asked once; 0 when it did not
// say).
func (r *Runtime) engineCPUs(ctx context.Context) int {
	r.mu.Lock()
	n := r.cpus
	r.mu.Unlock()
	if n > 0 {
		return n
	}
	info, err := r.cli.Info(ctx)
	if err != nil {
		return 0
	}
	r.mu.Lock()
	r.cpus = info.NCPU
	r.mu.Unlock()
	return info.NCPU
}

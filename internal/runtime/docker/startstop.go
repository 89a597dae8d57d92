package docker

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"dev8.dev/dev8/internal/runtime"
)

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

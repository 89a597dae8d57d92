package docker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// TestLostVolumeEndToEnd: on the docker runtime, a workspace whose volume
// was removed while it was stopped starts with its files back from its
// latest snapshot, and says so.
func TestLostVolumeEndToEnd(t *testing.T) {
	needDocker(t)
	t.Parallel()
	srv := startDockerServer(t, "")
	ctx := srv.Ctx
	c := serverproc.SignUpAdmin(t, ctx, srv.URL)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "lost-volume", BaseImage: docker.TestImage, InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want store.Status) {
		t.Helper()
		got, err := srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == want || e.Status == store.StatusError })
		if err != nil || got.Status != want {
			t.Fatalf("waiting for %s: %s %q %v", want, got.Status, got.StatusReason, err)
		}
	}
	waitStatus(store.StatusRunning)
	sshRun(t, ctx, c, env.ID, "mkdir -p /workspace/src/empty && echo kept > /workspace/src/note && ln -s src/note /workspace/link")
	snap, err := c.CreateSnapshot(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if snap, err = c.WaitForSnapshot(ctx, env.ID, snap.ID, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusStopped)
	// The stop took a PRE_SHUTDOWN snapshot: the latest, so the one restored.
	list, err := c.Snapshots(ctx, env.ID)
	if err != nil || len(list) != 2 || list[0].Trigger != "PRE_SHUTDOWN" || list[0].Status != sdk.SnapshotCompleted {
		t.Fatalf("snapshots after the stop: %+v, %v", list, err)
	}
	latest := list[0]

	// The volume goes, with the container that mounts it (the engine
	// refuses to remove a volume in use, even by a stopped container).
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	name := docker.ObjectName(env.ID)
	if err := dc.VolumeRemove(ctx, name, true); err == nil {
		t.Fatal("the engine removed the volume of an existing container")
	}
	if err := dc.ContainerRemove(ctx, name, container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dc.VolumeRemove(ctx, name, false); err != nil {
		t.Fatal(err)
	}

	if _, err := c.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusRunning)
	var ev store.AuditEvent
	wait.Eventually(wait.Context(t, 2*time.Minute), t, "an environment.restore_lost_volume audit event", func() bool {
		events, _, err := srv.Server.Store.ListAuditEvents(ctx, store.AuditFilter{Action: "environment.restore_lost_volume", ObjectID: env.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) > 0 {
			ev = events[0]
		}
		return len(events) > 0
	})
	if !ev.Success || ev.Detail["snapshot"] != latest.ID {
		t.Fatalf("audit event %+v, want a successful restore of %s", ev, latest.ID)
	}
	if out := sshRun(t, ctx, c, env.ID, "cat /workspace/link && test -d /workspace/src/empty && echo dir"); out != "kept\ndir\n" {
		t.Fatalf("after the lost volume was restored: %q", out)
	}
	got, err := c.GetEnvironment(ctx, env.ID)
	if err != nil || !strings.Contains(got.StatusReason, latest.ID) {
		t.Fatalf("environment after the restore: %+v, %v; want its status_reason to name %s", got, err, latest.ID)
	}
	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
}

package docker_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/sdk"
)

// TestEndToEnd drives a whole server on the docker runtime as a user
// would: create → RUNNING → a command over SSH writes into /workspace →
// stop → start → the file is still there → delete → container and volume
// gone.
func TestEndToEnd(t *testing.T) {
	if why := docker.TestUnavailable(); why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker is required in CI: %s", why)
		}
		t.Skip(why)
	}
	t.Parallel()
	srv := startDockerServer(t, "")
	ctx := srv.Ctx
	anon := sdk.New(srv.URL, "")
	if _, err := anon.Signup(ctx, "ada@example.com", "correct horse", "Ada"); err != nil {
		t.Fatal(err)
	}
	token, _, err := anon.Login(ctx, "ada@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.New(srv.URL, token)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "boxed", BaseImage: docker.TestImage, InstanceType: "lightweight"})
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

	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	inspect, err := dc.ContainerInspect(ctx, docker.ObjectName(env.ID))
	if err != nil {
		t.Fatal(err)
	}
	if inspect.HostConfig.NanoCPUs != 1e9 || inspect.HostConfig.Memory != 2<<30 || inspect.HostConfig.Privileged {
		t.Fatalf("limits: cpu %d, memory %d, privileged %v", inspect.HostConfig.NanoCPUs, inspect.HostConfig.Memory, inspect.HostConfig.Privileged)
	}

	run := func(cmd string) string {
		t.Helper()
		return sshRun(t, ctx, c, env.ID, cmd)
	}
	if out := run("echo kept > /workspace/note && pwd"); strings.TrimSpace(out) != "/workspace" {
		t.Fatalf("pwd over SSH = %q, want /workspace", out)
	}

	if _, err := c.Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusStopped)
	if _, err := c.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusRunning)
	if out := run("cat /workspace/note"); out != "kept\n" {
		t.Fatalf("after stop/start: %q", out)
	}

	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.ContainerInspect(ctx, docker.ObjectName(env.ID)); !errdefsNotFound(err) {
		t.Fatalf("container after delete: %v", err)
	}
	vols, err := dc.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("name", docker.ObjectName(env.ID)))})
	if err != nil || len(vols.Volumes) != 0 {
		t.Fatalf("volume after delete: %v %v", vols.Volumes, err)
	}
}

func errdefsNotFound(err error) bool {
	return err != nil && (client.IsErrNotFound(err) || errors.Is(err, os.ErrNotExist))
}

// TestWorkspaceUserOverSSH: in an image with a dev8 user, what a person runs
// over SSH runs as uid 1000 (the supervisor too), owns what it writes in
// /workspace and cannot write root's files.
func TestWorkspaceUserOverSSH(t *testing.T) {
	needDocker(t)
	t.Parallel()
	srv := startDockerServer(t, "")
	ctx := srv.Ctx
	c := serverproc.SignUpAdmin(t, ctx, srv.URL)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "as-dev8", BaseImage: docker.TestUserImage, InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool {
		return e.Status == store.StatusRunning || e.Status == store.StatusError
	}); err != nil || got.Status != store.StatusRunning {
		t.Fatalf("%s %q %v", got.Status, got.StatusReason, err)
	}
	out := sshRun(t, ctx, c, env.ID, "id -u; id -g; touch /workspace/mine && stat -c %u:%g /workspace/mine; echo $HOME $USER; cat /proc/1/status | grep ^Uid; touch /etc/passwd 2>/dev/null && echo root-writable || echo root-protected; cat /proc/1/environ >/dev/null 2>&1 && echo agent-token-readable || echo agent-token-protected")
	// The supervisor's environment holds its agent token: the workspace
	// user, though the same uid, must not read it (the kernel makes a
	// process that changed its uid non-dumpable, so /proc/1 stays root's).
	want := "1000\n1000\n1000:1000\n/home/dev8 dev8\nUid:\t1000\t1000\t1000\t1000\nroot-protected\nagent-token-protected\n"
	if out != want {
		t.Fatalf("over SSH:\n%s\nwant\n%s", out, want)
	}
	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
}

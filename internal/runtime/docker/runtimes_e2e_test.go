package docker_test

import (
	"os"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/sdk"
)

// TestSwitchingTheDefaultRuntimeLosesNothing: an installation whose server
// is restarted with another runtime keeps every workspace running on the
// runtime it was created on — none goes to ERROR, each still answers over
// SSH through the new server and stops and starts there — while new
// workspaces go to the new runtime.
func TestSwitchingTheDefaultRuntimeLosesNothing(t *testing.T) {
	if why := docker.TestUnavailable(); why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker is required in CI: %s", why)
		}
		t.Skip(why)
	}
	t.Parallel()
	dataDir := t.TempDir()
	start := func(runtime, addr string) *devserver.Server {
		return devserver.Start(t, devserver.Options{DataDir: dataDir, Addr: addr, Config: func(c *server.Config) {
			c.Runtime = runtime
			// The static test build serves as the supervisor of both
			// runtimes: local runs it as a process, docker copies it in.
			c.SupervisorBinary = docker.TestDev8Binary()
			c.SupervisorCommand = []string{docker.TestDev8Binary(), "supervisor"}
			c.SupervisorEnv = nil
			c.CodeServer = ""
		}})
	}
	waitStatus := func(srv *devserver.Server, id string, want store.Status) store.Environment {
		t.Helper()
		got, err := srv.Manager.WaitFor(srv.Ctx, id, func(e store.Environment) bool { return e.Status == want || e.Status == store.StatusError })
		if err != nil || got.Status != want {
			t.Fatalf("waiting for %s to be %s: %s %q %v", id, want, got.Status, got.StatusReason, err)
		}
		return got
	}

	first := start("local", "")
	addr := strings.TrimPrefix(first.URL, "http://")
	c := serverproc.SignUpAdmin(t, first.Ctx, first.URL)
	web, err := c.CreateEnvironment(first.Ctx, sdk.CreateEnvironmentRequest{Name: "web", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if web.Runtime != "local" {
		t.Fatalf("web runs on %q, want local", web.Runtime)
	}
	waitStatus(first, web.ID, store.StatusRunning)
	first.Stop()

	// Restarted with docker as the runtime: web stays on local.
	second := start("docker", addr)
	ctx := second.Ctx
	api, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "api", BaseImage: docker.TestUserImage, InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if api.Runtime != "docker" {
		t.Fatalf("api runs on %q, want docker", api.Runtime)
	}
	waitStatus(second, api.ID, store.StatusRunning)
	got := waitStatus(second, web.ID, store.StatusRunning)
	if got.Runtime != "local" || got.StatusReason != "" {
		t.Fatalf("web after the switch: runtime %q, reason %q", got.Runtime, got.StatusReason)
	}
	if out := sshRun(t, ctx, c, web.ID, "echo local"); out != "local\n" {
		t.Fatalf("web over SSH after the switch: %q", out)
	}
	if out := sshRun(t, ctx, c, api.ID, "echo docker"); out != "docker\n" {
		t.Fatalf("api over SSH: %q", out)
	}
	if _, err := c.Stop(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(second, web.ID, store.StatusStopped)
	if _, err := c.Start(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(second, web.ID, store.StatusRunning)
	second.Stop()

	// And back to local: api stays on docker.
	third := start("local", addr)
	ctx = third.Ctx
	got = waitStatus(third, api.ID, store.StatusRunning)
	if got.Runtime != "docker" || got.StatusReason != "" {
		t.Fatalf("api after switching back: runtime %q, reason %q", got.Runtime, got.StatusReason)
	}
	if out := sshRun(t, ctx, c, api.ID, "echo still"); out != "still\n" {
		t.Fatalf("api over SSH after switching back: %q", out)
	}
	for _, id := range []string{web.ID, api.ID} {
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitForDeleted(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
}

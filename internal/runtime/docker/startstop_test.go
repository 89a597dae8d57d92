package docker

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestStopRightAfterStart: a Stop that comes while the supervisor (PID 1)
// is still starting, before it handles SIGTERM, still ends it gracefully
// (exit code 0, no reason), not by SIGKILL at the timeout.
func TestStopRightAfterStart(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	for range 3 {
		if _, err := rt.Start(ctx, inst.EnvironmentID); err != nil {
			t.Fatal(err)
		}
		// Killed at the timeout would read exit code 137, a SIGTERM
		// before the supervisor handles it exit code 2: both are reasons.
		if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
			t.Fatal(err)
		}
		got, err := newRuntime(t, nil).Inspect(ctx, inst.EnvironmentID)
		if err != nil || got.State != runtime.StateStopped || got.ExitReason != "" {
			t.Fatalf("after Stop: %+v %v; want stopped with no reason", got, err)
		}
	}
}

func TestStopKeepsVolumeDeleteRemovesAll(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	id, name := inst.EnvironmentID, ObjectName(inst.EnvironmentID)
	expectObjects(t, ctx, id, []string{name + ":created"}, []string{name, name + "-home"})
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, []string{name + ":running"}, []string{name, name + "-home"})
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, []string{name + ":exited"}, []string{name, name + "-home"})
	got, err := rt.Inspect(ctx, id)
	if err != nil || got.State != runtime.StateStopped || got.ExitReason != "" {
		t.Fatalf("Inspect after Stop = %+v, %v; want stopped without a reason", got, err)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, nil, nil)
}

func TestExitOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	id := inst.EnvironmentID
	inst, err := rt.Start(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The supervisor dies without a Stop, as under the OOM killer.
	if err := cli.ContainerKill(ctx, inst.Ref, "KILL"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Runtime{rt, newRuntime(t, nil)} { // and after a server restart
		var got runtime.Instance
		for {
			got, err = r.Inspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == runtime.StateStopped || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got.State != runtime.StateStopped || !strings.Contains(got.ExitReason, "137") {
			t.Fatalf("Inspect after the supervisor was killed = %+v; want stopped with exit code 137 as the reason", got)
		}
		list, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(x runtime.Instance) bool { return x.EnvironmentID == id })
		if i < 0 || list[i].ExitReason != got.ExitReason {
			t.Fatalf("List does not report %s with reason %q: %+v", id, got.ExitReason, list)
		}
	}
	// It starts again, and the reason goes.
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := newRuntime(t, nil).Inspect(ctx, id); err != nil || got.ExitReason != "" {
		t.Fatalf("Inspect from a new runtime after Stop = %+v, %v; want no reason", got, err)
	}
}

func TestSupervisorFailsAtStart(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	// The supervisor refuses it. Through the operator's ExtraEnv: a
	// workspace's own Spec.Env cannot configure the supervisor
	// (agentapi.Launch drops its DEV8_* keys).
	rt := newRuntime(t, func(c *Config) { c.ExtraEnv = []string{"DEV8_METRICS_INTERVAL=bogus"} })
	spec := testSpec()
	id := create(t, ctx, rt, spec).EnvironmentID
	_, err := rt.Start(ctx, id) // may or may not see the exit yet
	t.Logf("Start: %v", err)
	var got runtime.Instance
	for {
		got, err = rt.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == runtime.StateStopped || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.State != runtime.StateStopped || !strings.Contains(got.ExitReason, "exit code 1") {
		t.Fatalf("Inspect = %+v; want stopped with exit code 1 as the reason", got)
	}
}

func TestStartRecopiesMissingSupervisor(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	// As if the server died between ContainerCreate and the copy: a
	// container without the supervisor.
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerRemove(ctx, ObjectName(spec.EnvironmentID), container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "dev8")
	if err := os.WriteFile(empty, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	bare := newRuntime(t, func(c *Config) { c.SupervisorBinary = empty })
	if _, err := bare.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Start(ctx, spec.EnvironmentID)
	if err != nil {
		t.Fatalf("Start over a container without the supervisor: %v", err)
	}
	waitLogs(t, ctx, inst.Ref, "supervisor started")
}

// TestAgentReachable checks that the supervisor in the container reaches the
// server at Spec.AgentURL: on loopback with host networking (the default),
// and at host.docker.internal with a bridge network when the server listens
// on the bridge's gateway address.
func TestAgentReachable(t *testing.T) {
	t.Parallel()
	needDocker(t)
	gateway := ""
	if nw, err := cli.NetworkInspect(wait.Context(t, 2*time.Minute), "bridge", network.InspectOptions{}); err == nil && len(nw.IPAM.Config) > 0 {
		gateway = nw.IPAM.Config[0].Gateway
	}
	if gateway == "" { // 20.10 does not always record it: the bridge's own address
		if ifi, err := net.InterfaceByName("docker0"); err == nil {
			addrs, _ := ifi.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					gateway = ipn.IP.String()
				}
			}
		}
	}
	for _, tc := range []struct {
		mode, listen, host string
	}{
		{"host", "127.0.0.1:0", "127.0.0.1"},
		{"bridge", net.JoinHostPort(gateway, "0"), "host.docker.internal"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			if gateway == "" && tc.mode == "bridge" {
				t.Skip("the engine has no bridge network with a gateway")
			}
			ctx := wait.Context(t, 2*time.Minute)
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 100)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case got <- r.Method + " " + r.URL.Path + " auth=" + r.Header.Get("Authorization"):
				default:
				}
				http.Error(w, "test server", http.StatusServiceUnavailable)
			}))
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
			_, port, _ := net.SplitHostPort(ln.Addr().String())

			rt := newRuntime(t, func(c *Config) { c.NetworkMode = tc.mode })
			spec := testSpec()
			spec.AgentURL = "http://" + net.JoinHostPort(tc.host, port)
			spec.AgentToken = "tok-" + tc.mode
			id := create(t, ctx, rt, spec).EnvironmentID
			if _, err := rt.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			select {
			case req := <-got:
				t.Logf("the supervisor called %s", req)
				if !strings.Contains(req, id) || !strings.Contains(req, spec.AgentToken) {
					t.Errorf("request %q names neither the environment nor the token", req)
				}
			case <-ctx.Done():
				t.Fatalf("the supervisor never reached %s", spec.AgentURL)
			}
		})
	}
}

func TestNotifyExits(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	t.Cleanup(func() { _ = rt.Close() })
	ch := make(chan string, 16)
	rt.NotifyExits(ch)
	stopped := create(t, ctx, rt, testSpec()).EnvironmentID
	killed := create(t, ctx, rt, testSpec()).EnvironmentID
	if _, err := rt.Start(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Start(ctx, killed)
	if err != nil {
		t.Fatal(err)
	}
	// A requested stop is not an exit to report; a kill afterwards is. Ids
	// arrive in order, so seeing the killed one first means the stopped
	// one was not reported (other tests' ids may come through too).
	if err := rt.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerKill(ctx, inst.Ref, "KILL"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case id := <-ch:
			if id == stopped {
				t.Fatalf("NotifyExits reported %s, which was stopped on request", stopped)
			}
			if id == killed {
				if err := rt.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("NotifyExits never reported %s", killed)
		}
	}
}

// TestInstallationsDoNotMeet: two Dev8 installations on one engine never
// list, inspect or remove each other's workspaces (a server converging after
// a restart removes what it lists as orphans).
func TestInstallationsDoNotMeet(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	mine := newRuntime(t, nil)
	theirs := newRuntime(t, func(c *Config) { c.Installation = testInstallation + "-other" })
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	if _, err := mine.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	list, err := theirs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range list {
		if inst.EnvironmentID == spec.EnvironmentID {
			t.Fatal("another installation lists this workspace")
		}
	}
	if _, err := theirs.Inspect(ctx, spec.EnvironmentID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("another installation inspects it: %v", err)
	}
	if _, err := mine.Inspect(ctx, spec.EnvironmentID); err != nil {
		t.Fatalf("its own installation: %v", err)
	}
}

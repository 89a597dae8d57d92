package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/internal/testutil/wsssh"
	"dev8.dev/dev8/sdk"
)

// needDocker skips the test when the Docker tests cannot run (fails it
// under CI).
func needDocker(t *testing.T) {
	t.Helper()
	if why := docker.TestUnavailable(); why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker is required in CI: %s", why)
		}
		t.Skip(why)
	}
}

// sshRun runs cmd in the environment over SSH through the server's tunnel
// and returns its combined output.
func sshRun(t *testing.T, ctx context.Context, c *sdk.Client, envID, cmd string) string {
	t.Helper()
	return wsssh.Run(t, ctx, c, envID, cmd)
}

// privateEngine is a dockerd of the test's own (own data root, exec root,
// containerd namespace and socket), so the test can restart it without
// disturbing the engine everyone else's tests share.
type privateEngine struct {
	t      *testing.T
	dir    string
	bridge string
	host   string
	cli    *client.Client
	cmd    *exec.Cmd
	done   chan error
	logBuf *bytes.Buffer
	mu     sync.Mutex
}

func startPrivateEngine(t *testing.T, ctx context.Context) *privateEngine {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but dockerd is missing: %v", err)
		}
		t.Skipf("dockerd is missing (scripts/dockerd.sh installs it): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("a private dockerd needs root")
	}
	// Short: containerd's sockets live under it (108-byte socket paths).
	dir, err := os.MkdirTemp("", "d8d-")
	if err != nil {
		t.Fatal(err)
	}
	e := &privateEngine{t: t, dir: dir, host: "unix://" + filepath.Join(dir, "sock"), logBuf: &bytes.Buffer{}}
	t.Cleanup(e.cleanup)
	// A bridge of its own: a dockerd given none (--bridge=none) deletes the
	// host's docker0, which the shared engine needs. A TEST-NET-2-like
	// benchmark range address (198.18.0.0/15) that routes nowhere.
	e.bridge = "d8t" + strings.ToLower(strings.TrimPrefix(filepath.Base(dir), "d8d-"))
	if len(e.bridge) > 15 {
		e.bridge = e.bridge[:15]
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	for _, args := range [][]string{
		{"link", "add", e.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("198.18.%d.1/24", b[0]), "dev", e.bridge},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	e.cli, err = client.NewClientWithOpts(client.WithHost(e.host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	e.start(ctx, true)
	if err := docker.TestBuildImages(ctx, e.cli); err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs dockerd and waits until it answers.
func (e *privateEngine) start(ctx context.Context, liveRestore bool) {
	e.t.Helper()
	args := []string{
		"--data-root", filepath.Join(e.dir, "root"), "--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "pid"), "-H", e.host,
		"--iptables=false", "--ip-masq=false", "--bridge", e.bridge,
		"--containerd-namespace", "dev8-test-" + filepath.Base(e.dir), "--containerd-plugins-namespace", "dev8-test-plugins-" + filepath.Base(e.dir),
	}
	if liveRestore {
		args = append(args, "--live-restore")
	}
	cmd := exec.Command("dockerd", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = e, e
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd, e.done = cmd, make(chan error, 1)
	go func() { e.done <- cmd.Wait() }()
	wait.Succeeds(ctx, e.t, "the private dockerd to answer", func() error {
		select {
		case err := <-e.done:
			e.t.Fatalf("private dockerd exited: %v\n%s", err, e.logs())
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := e.cli.Ping(pctx); err != nil {
			return fmt.Errorf("%w\n%s", err, e.logs())
		}
		return nil
	})
}

// stop shuts dockerd down as a service manager would (SIGTERM) and waits
// until it has exited.
func (e *privateEngine) stop() {
	e.t.Helper()
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(time.Minute):
		_ = e.cmd.Process.Kill()
		<-e.done
		e.t.Errorf("private dockerd did not stop within a minute")
	}
	e.cmd = nil
}

func (e *privateEngine) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logBuf.Write(p)
}

func (e *privateEngine) logs() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.logBuf.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

// cleanup removes every container, then stops dockerd, unmounts what it
// mounted under its directory and removes it.
func (e *privateEngine) cleanup() {
	if e.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true}); err == nil {
			for _, c := range cs {
				_ = e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			}
		}
		cancel()
		e.stop()
	}
	if e.cli != nil {
		e.cli.Close()
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var under []string
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], e.dir+"/") {
				under = append(under, f[1])
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(under)))
		for _, m := range under {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		e.t.Errorf("remove private dockerd's directory: %v", err)
	}
	if e.bridge != "" {
		if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil {
			e.t.Errorf("remove bridge %s: %v\n%s", e.bridge, err, out)
		}
	}
}

// TestDockerdRestart restarts the Docker engine under a running server
// with a running workspace.
//
// With --live-restore (what scripts/dockerd.sh starts) the container keeps
// running through the restart: the environment stays RUNNING, its tunnel
// and files are untouched, and stop/start work afterwards on the same
// container. Without it the engine stops (or, starting up, kills) the
// containers: the environment goes to ERROR with a reason and is not
// restarted behind the user's back; a start brings it back with its files.
func TestDockerdRestart(t *testing.T) {
	needDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	eng := startPrivateEngine(t, ctx)
	srv := startDockerServer(t, eng.host)
	c := serverproc.SignUpAdmin(t, ctx, srv.URL)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "survivor", BaseImage: docker.TestImage, InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want store.Status) store.Environment {
		t.Helper()
		got, err := srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == want })
		if err != nil {
			t.Fatalf("waiting for %s: got %s %q: %v\n%s", want, got.Status, got.StatusReason, err, eng.logs())
		}
		return got
	}
	waitStatus(store.StatusRunning)
	sshRun(t, ctx, c, env.ID, "echo kept > /workspace/note")
	before, err := eng.cli.ContainerInspect(ctx, docker.ObjectName(env.ID))
	if err != nil {
		t.Fatal(err)
	}

	// 1. Live restore: nothing happens to the workspace.
	eng.stop()
	eng.start(ctx, false) // the next restart is then one without live restore
	after, err := eng.cli.ContainerInspect(ctx, docker.ObjectName(env.ID))
	if err != nil {
		t.Fatal(err)
	}
	// A dockerd that starts without live restore stops the containers it
	// finds running; what matters first is that the live restart itself
	// kept it: same container, same start.
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt {
		t.Fatalf("container changed across a live-restore restart: %s %s → %s %s", before.ID, before.State.StartedAt, after.ID, after.State.StartedAt)
	}

	// 2. An engine without live restore stopped it: ERROR with a reason.
	got := waitStatus(store.StatusError)
	if got.StatusReason == "" {
		t.Fatal("ERROR without a reason")
	}
	t.Logf("engine started without live restore: %s %q", got.Status, got.StatusReason)
	if _, err := c.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusRunning)
	if out := sshRun(t, ctx, c, env.ID, "cat /workspace/note"); out != "kept\n" {
		t.Fatalf("after restarting it: %q", out)
	}

	// 3. A plain engine restart (no live restore) while it runs.
	eng.stop()
	eng.start(ctx, true)
	got = waitStatus(store.StatusError)
	if got.StatusReason == "" {
		t.Fatal("ERROR without a reason")
	}
	t.Logf("engine restarted without live restore: %s %q", got.Status, got.StatusReason)
	if _, err := c.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusRunning)

	// 4. Live restore again (this engine has it): RUNNING throughout, and
	// the tunnel works without a new start.
	eng.stop()
	eng.start(ctx, true)
	if out := sshRun(t, ctx, c, env.ID, "cat /workspace/note"); out != "kept\n" {
		t.Fatalf("after a live-restore restart: %q", out)
	}
	if _, err := c.Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusStopped)
	if _, err := c.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(store.StatusRunning)
	if e, err := srv.Store.GetEnvironment(ctx, env.ID); err != nil || e.Status != store.StatusRunning {
		t.Fatalf("at the end: %+v %v", e, err)
	}
	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
}

// startDockerServer starts a whole server on the docker runtime (the
// engine at dockerHost, or the default one when empty) whose workspaces run
// the static test build of dev8 as their supervisor.
func startDockerServer(t *testing.T, dockerHost string) *devserver.Server {
	t.Helper()
	return devserver.Start(t, devserver.Options{Config: func(c *server.Config) {
		c.Runtime = "docker"
		c.DockerHost = dockerHost
		if dockerHost != "" {
			// A second engine on this host would make its own dev8
			// network over the same bridge interface (dev8br0) as the
			// shared engine's, and take it over: its default bridge (a
			// bridge of its own, see startPrivateEngine) is enough here.
			c.DockerNetwork = "bridge"
		}
		c.SupervisorBinary = docker.TestDev8Binary()
		c.SupervisorEnv = nil
	}})
}

// startServerProcess runs the real dev8 binary serving on the docker runtime.
func startServerProcess(t *testing.T, ctx context.Context, dataDir string) *serverproc.Process {
	t.Helper()
	return serverproc.Start(t, ctx, docker.TestDev8Binary(), serverproc.Options{
		Args: []string{"--runtime", "docker", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--resync-interval", "200ms", "--code-server", "off"},
		Dir:  dataDir,
	})
}

// objectsOf lists the names of the containers and volumes labelled with
// the user, sorted.
func objectsOf(t *testing.T, ctx context.Context, dc *client.Client, userID string) (containers, volumes []string) {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", runtime.LabelUser+"="+userID))
	cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		containers = append(containers, strings.TrimPrefix(c.Names[0], "/"))
	}
	vs, err := dc.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Volumes {
		volumes = append(volumes, v.Name)
	}
	slices.Sort(containers)
	slices.Sort(volumes)
	return containers, volumes
}

// TestServerKilledDuringCreate kills the real dev8 server (SIGKILL) while
// it creates and deletes workspaces on a real engine, and restarts it: every
// environment ends RUNNING with its container, every deleted one leaves
// nothing behind, and no container or volume is left without an
// environment. Then a container killed behind Dev8's back shows as ERROR
// with the exit code.
func TestServerKilledDuringCreate(t *testing.T) {
	needDocker(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	dataDir := t.TempDir()
	srv := startServerProcess(t, ctx, dataDir)
	c := serverproc.SignUpAdmin(t, ctx, srv.URL)
	me, err := c.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever happened, nothing of this test stays on the engine:
		// the server first, so it creates nothing more.
		srv.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f := filters.NewArgs(filters.Arg("label", runtime.LabelUser+"="+me.ID))
		if cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
			for _, c := range cs {
				_ = dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
		if vs, err := dc.VolumeList(ctx, volume.ListOptions{Filters: f}); err == nil {
			for _, v := range vs.Volumes {
				_ = dc.VolumeRemove(ctx, v.Name, true)
			}
		}
	})

	const n = 4 // within the default quota of running environments per user
	var ids []string
	for i := range n {
		env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: fmt.Sprintf("crash-%d", i), BaseImage: docker.TestImage, InstanceType: "lightweight"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID)
	}
	// Half of them are deleted while they are being created.
	deleted := map[string]bool{}
	for _, id := range ids[:n/2] {
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		deleted[id] = true
	}
	srv.Kill()
	mid, midVols := objectsOf(t, ctx, dc, me.ID)
	t.Logf("killed mid-operation; on the engine: %d containers, %d volumes", len(mid), len(midVols))

	srv = startServerProcess(t, ctx, dataDir)
	c = sdk.New(srv.URL, c.Token())
	var wantContainers, wantVolumes []string
	for _, id := range ids {
		if deleted[id] {
			if err := c.WaitForDeleted(ctx, id, nil); err != nil {
				t.Fatalf("deleted %s: %v\n%s", id, err, srv.Logs())
			}
			continue
		}
		if _, err := c.WaitForStatus(ctx, id, sdk.StatusRunning, nil); err != nil {
			t.Fatalf("%s: %v\n%s", id, err, srv.Logs())
		}
		name := docker.ObjectName(id)
		wantContainers = append(wantContainers, name)
		wantVolumes = append(wantVolumes, name, name+"-home")
	}
	slices.Sort(wantContainers)
	slices.Sort(wantVolumes)
	// A create the killed server had sent can still finish inside dockerd
	// after the new server converged; the resync (every 200 ms here)
	// removes such an orphan, so the engine must come to exactly the
	// surviving environments' objects.
	wait.Succeeds(wait.Context(t, wait.Medium), t, "the engine to hold the surviving environments' objects after the restart", func() error {
		gotContainers, gotVolumes := objectsOf(t, ctx, dc, me.ID)
		if slices.Equal(gotContainers, wantContainers) && slices.Equal(gotVolumes, wantVolumes) {
			return nil
		}
		return fmt.Errorf("containers %v volumes %v; want %v and %v", gotContainers, gotVolumes, wantContainers, wantVolumes)
	})

	// A container killed behind Dev8's back: ERROR with the exit code.
	victim := ids[n-1]
	if err := dc.ContainerKill(ctx, docker.ObjectName(victim), "KILL"); err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitForStatus(ctx, victim, sdk.StatusError, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.GetEnvironment(ctx, victim)
	if err != nil || !strings.Contains(e.StatusReason, "exit code 137") {
		t.Fatalf("killed container: %+v %v; want ERROR with exit code 137 as the reason", e, err)
	}

	for _, id := range ids[n/2:] {
		if _, err := c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[n/2:] {
		if err := c.WaitForDeleted(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if cs, vs := objectsOf(t, ctx, dc, me.ID); len(cs)+len(vs) != 0 {
		t.Fatalf("after deleting everything: containers %v volumes %v", cs, vs)
	}
}

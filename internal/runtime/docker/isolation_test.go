package docker

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/google/nftables"

	"dev8.dev/dev8/internal/testutil/wait"
)

// TestIsolation: on the isolated network, as a hostile workspace would
// try it. The supervisor reaches the server only through the agent socket
// (its AgentURL leads nowhere); a workspace runs with no capability that
// sniffs or spoofs traffic; it reaches neither another workspace (which
// answers its own loopback and the host) nor a service of the host (which
// answers the host).
func TestIsolation(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 3*time.Minute)
	rt := newRuntime(t, nil)

	// The agent socket, as the server makes it: a directory of its own.
	dir, err := os.MkdirTemp("", "d8a-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	agent := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Method + " " + r.URL.Path + " auth=" + r.Header.Get("Authorization"):
		default:
		}
		http.Error(w, "test server", http.StatusServiceUnavailable)
	})}
	go agent.Serve(ln)
	t.Cleanup(func() { agent.Close() })

	spec := testSpec()
	spec.AgentSocket = socket
	a := create(t, ctx, rt, spec)
	b := create(t, ctx, rt, testSpec())
	for _, id := range []string{a.EnvironmentID, b.EnvironmentID} {
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case req := <-got:
		if !strings.Contains(req, a.EnvironmentID) || !strings.Contains(req, "test-token") {
			t.Errorf("request over the agent socket %q names neither the environment nor the token", req)
		}
	case <-ctx.Done():
		t.Fatal("the supervisor never reached the agent socket")
	}
	waitLogs(t, ctx, a.Ref, "running as the workspace user")

	// Capabilities: only those becoming the user needs are bounded in
	// (CHOWN, DAC_OVERRIDE, FOWNER, SETGID, SETUID), and none is left to
	// the user: no NET_RAW, NET_ADMIN or SYS_ADMIN.
	status := execOut(t, ctx, a.Ref, "/bin/busybox", "cat", "/proc/1/status")
	for _, want := range []string{"\nCapBnd:\t00000000000000cb\n", "\nCapEff:\t0000000000000000\n", "\nCapPrm:\t0000000000000000\n", "\nUid:\t1000\t1000\t1000\t1000\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("workspace supervisor status lacks %q:\n%s", want, status)
		}
	}

	ci, err := cli.ContainerInspect(ctx, b.Ref)
	if err != nil {
		t.Fatal(err)
	}
	ep := ci.NetworkSettings.Networks[IsolatedNetwork]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("workspace not on network %s: %+v", IsolatedNetwork, ci.NetworkSettings.Networks)
	}
	bAddr := net.JoinHostPort(ep.IPAddress, "8080")
	execOut(t, ctx, b.Ref, "/bin/sh", "-c", "mkdir -p /workspace/www && echo from-b > /workspace/www/index.html && /bin/busybox httpd -p 8080 -h /workspace/www")
	// B serves: on its own loopback, and to the host.
	if out, errOut, code := execRun(t, ctx, b.Ref, fetch("127.0.0.1:8080")...); code != 0 || !strings.HasSuffix(out, "\nfrom-b\n") {
		t.Fatalf("workspace B's own server answered %q (exit code %d, %s)", out, code, errOut)
	}
	if body := httpGet(t, "http://"+bAddr+"/index.html"); body != "from-b\n" {
		t.Fatalf("workspace B's server answered the host %q", body)
	}
	// A reaches neither B ...
	if out, errOut, code := execRun(t, ctx, a.Ref, fetch(bAddr)...); code == 0 {
		t.Errorf("workspace A reached workspace B at %s: %q", bAddr, out)
	} else {
		t.Logf("A → B refused as it should be: %s", strings.TrimSpace(errOut))
	}

	// ... nor a service of the host on the bridge's gateway address.
	nw, err := cli.NetworkInspect(ctx, IsolatedNetwork, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gateway := ep.Gateway
	if gateway == "" && len(nw.IPAM.Config) > 0 {
		gateway = nw.IPAM.Config[0].Gateway
	}
	if gateway == "" {
		t.Fatalf("no gateway address for network %s", IsolatedNetwork)
	}
	hostLn, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hostSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "host service\n") }))
	hostSrv.Listener.Close()
	hostSrv.Listener = hostLn
	hostSrv.Start()
	t.Cleanup(hostSrv.Close)
	if body := httpGet(t, hostSrv.URL); body != "host service\n" {
		t.Fatalf("the host's service answered the host %q", body)
	}
	if out, errOut, code := execRun(t, ctx, a.Ref, fetch(hostLn.Addr().String())...); code == 0 {
		t.Errorf("workspace A reached the host's service at %s: %q", hostSrv.URL, out)
	} else {
		t.Logf("A → host refused as it should be: %s", strings.TrimSpace(errOut))
	}
}

// fetch is the command that GETs /index.html from addr in a workspace,
// giving up after 3 seconds (busybox's wget needs what a bare image lacks).
func fetch(addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"/bin/sh", "-c", `printf 'GET /index.html HTTP/1.0\r\n\r\n' | /bin/busybox nc -w 3 ` + host + " " + port}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

// TestNetworkRemovedWhileStopped: the isolated network can be removed while
// every workspace is stopped (docker network prune does it), after which
// the engine refuses to start their containers; the next Create makes the
// network anew and a new container over the same volumes, and the
// workspace starts with its files.
func TestNetworkRemovedWhileStopped(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 3*time.Minute)
	suffix := strings.TrimPrefix(newID(t), "dtt-")[:8]
	rt := newRuntime(t, nil)
	// A network and bridge of this test's own: the shared one is in use.
	rt.netName, rt.bridgeName, rt.cfg.NetworkMode = "dev8-test-"+suffix, "d8n"+suffix, "dev8-test-"+suffix
	t.Cleanup(func() {
		_ = cli.NetworkRemove(context.Background(), rt.netName)
		removeFirewall(t, rt.bridgeName)
	})
	spec := testSpec()
	inst := create(t, ctx, rt, spec)
	if _, err := rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(ctx, rt, inst, "kept", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if err := cli.NetworkRemove(ctx, rt.netName); err != nil {
		t.Fatalf("remove the network while the workspace is stopped: %v", err)
	}
	spec.EnvironmentID = inst.EnvironmentID
	again, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Ref == inst.Ref {
		t.Errorf("the container attached to the removed network was kept (%s): it cannot start", again.Ref)
	}
	if again, err = rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatalf("start after the network was removed: %v", err)
	}
	if got, err := readFile(ctx, rt, again, "kept"); err != nil || string(got) != "yes" {
		t.Errorf("workspace file after the new container: %q, %v", got, err)
	}
	ci, err := cli.ContainerInspect(ctx, again.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if ci.NetworkSettings.Networks[rt.netName] == nil {
		t.Errorf("the new container is not on %s: %+v", rt.netName, ci.NetworkSettings.Networks)
	}
}

// removeFirewall removes the host rules set for a test's own bridge.
func removeFirewall(t *testing.T, bridge string) {
	c, err := nftables.New()
	if err != nil {
		t.Errorf("nftables: %v", err)
		return
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: firewallTable}
	for _, name := range []string{"input-" + bridge, "forward-" + bridge} {
		c.DelChain(&nftables.Chain{Name: name, Table: tbl})
	}
	if err := c.Flush(); err != nil {
		t.Errorf("remove the rules for %s: %v", bridge, err)
	}
}

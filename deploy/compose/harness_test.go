// Package compose_test runs Dev8 as this folder deploys it — replicas on
// one PostgreSQL database behind HAProxy with haproxy.cfg — on loopback,
// with real processes: three `dev8 server` replicas, Debian's HAProxy, and
// workspaces on the real test cluster (scripts/k8s-test-cluster.sh), whose
// supervisors dial the load balancer. (compose.yaml itself needs images
// from a registry this machine does not reach; compose_test.go checks it.)
package compose_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/extserver"
	"dev8.dev/dev8/internal/testutil/k8stest"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/testcert"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// The test's workspace image, loaded into the node (never pulled).
const workspaceImage = "dev8-test/compose-busybox:latest"

var (
	buildOnce sync.Once
	dev8Bin   string
	buildErr  error
)

// setup builds dev8 and the workspace image once for the package's tests.
func setup(t testing.TB, ctx context.Context, c *k8stest.Cluster) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dev8-compose-test-")
		if err != nil {
			buildErr = err
			return
		}
		dev8Bin = filepath.Join(dir, "dev8")
		if buildErr = k8stest.BuildStatic(ctx, "./cmd/dev8", dev8Bin); buildErr != nil {
			return
		}
		ws, err := k8stest.WorkspaceImage(workspaceImage)
		if err != nil {
			buildErr = err
			return
		}
		buildErr = c.BuildAndLoad(ctx, ws)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return dev8Bin
}

// deployment is replicas behind HAProxy.
type deployment struct {
	t       testing.TB
	ctx     context.Context
	cluster *k8stest.Cluster
	ns      string // the workspaces' namespace
	bin     string
	// stats is HAProxy's stats socket.
	stats string
	// haproxyDone is closed when HAProxy exits; haproxyLog is its output.
	haproxyDone <-chan struct{}
	haproxyLog  *strings.Builder
	env         []string // every replica's environment
	replicas    []*replica
	// URL is HAProxy's TLS frontend: the access URL.
	URL    string
	client *http.Client // trusts the deployment's certificate
	admin  string       // the first user's session token
}

// replica is one dev8 server process and where it listens.
type replica struct {
	addr    string // 127.0.0.1:port
	dataDir string
	proc    *serverproc.Process
	// id is the replica's name in the store (its leases, its tunnels).
	id string
}

// URL is the replica's own address, past the load balancer.
func (r *replica) URL() string { return "http://" + r.addr }

// freeAddr is host with a port free now.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// deploy starts n replicas and HAProxy in front of them.
func deploy(t testing.TB, n int) *deployment {
	t.Helper()
	ctx := wait.Context(t, 20*time.Minute)
	cluster, err := k8stest.Find(ctx)
	if err != nil {
		k8stest.Need(t, err.Error())
	}
	haproxy := extserver.Binary(t, "DEV8_HAPROXY", "haproxy", "HAProxy is needed (apt-get install haproxy; .ci/run installs it)")
	bin := setup(t, ctx, cluster)
	ns := cluster.NewNamespace(t)

	people := freeAddr(t, cluster.HostIP)
	agents := freeAddr(t, cluster.HostIP)
	pool, pemFile := writeCertificate(t, cluster.HostIP)
	d := &deployment{t: t, ctx: ctx, cluster: cluster, ns: ns, bin: bin, URL: "https://" + people,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	d.env = []string{
		"DATABASE_URL=" + pgtest.NewDatabase(t),
		"DEV8_SECRET_KEY=" + hex.EncodeToString(key),
		"DEV8_ACCESS_URL=" + d.URL,
		"DEV8_DRAIN_DELAY=3s",
		"DEV8_TRUSTED_PROXIES=127.0.0.1/32",
		"DEV8_RUNTIME=kubernetes",
		"DEV8_KUBECONFIG=" + cluster.Kubeconfig,
		"DEV8_KUBERNETES_NAMESPACE=" + ns,
		"DEV8_KUBERNETES_AGENT_URL=http://" + agents,
		"DEV8_KUBERNETES_SERVER_EGRESS=" + cluster.HostIP,
		"DEV8_KUBERNETES_IMAGE_PULL_POLICY=Never",
		"DEV8_KUBERNETES_CPU_REQUEST_RATIO=0.1",
		"DEV8_TEMPLATE_IMAGES=base=" + workspaceImage,
	}
	for range n {
		d.replicas = append(d.replicas, &replica{addr: freeAddr(t, "127.0.0.1"), dataDir: t.TempDir()})
	}
	for _, r := range d.replicas {
		d.start(r)
	}
	d.runHAProxy(haproxy, people, agents, pemFile)
	wait.Succeeds(ctx, t, "the load balancer to answer /ready", func() error {
		select {
		case <-d.haproxyDone:
			t.Fatalf("HAProxy exited:\n%s", d.haproxyLog.String())
		default:
		}
		resp, err := d.client.Get(d.URL + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready = %d", resp.StatusCode)
		}
		return nil
	})
	d.admin = d.signUp()
	return d
}

// replicaID matches the log line that names a replica at start.
var replicaID = regexp.MustCompile(`"replica":"([^"]+)"`)

// start runs replica r (again, after a stop: same address and data
// directory, as a restarted replica has).
func (d *deployment) start(r *replica) {
	d.t.Helper()
	r.id = "" // a restarted replica has a new name
	r.proc = serverproc.Start(d.t, d.ctx, d.bin, serverproc.Options{
		Args: []string{"--addr", r.addr, "--data-dir", r.dataDir},
		Env:  d.env,
		Dir:  r.dataDir,
		OnLog: func(msg string, line []byte) {
			if m := replicaID.FindSubmatch(line); m != nil && r.id == "" {
				r.id = string(m[1])
			}
		},
	})
	if r.id == "" {
		d.t.Fatalf("replica %s did not log its name:\n%s", r.addr, r.proc.Logs())
	}
}

// runHAProxy runs haproxy.cfg with the test's addresses: TLS for people
// on people, the replicas as its servers, and a plain frontend on agents
// for the workspaces' supervisors.
func (d *deployment) runHAProxy(bin, people, agents, pemFile string) {
	d.t.Helper()
	cfg, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	serversWritten := false
	for _, line := range strings.Split(string(cfg), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "bind :443 "):
			line = "    bind " + people + " ssl crt " + pemFile + " alpn http/1.1"
		case strings.HasPrefix(trimmed, "bind :80"), strings.HasPrefix(trimmed, "user "), strings.HasPrefix(trimmed, "group "),
			// Compose raises the open-files limit it needs; here HAProxy
			// sizes itself to the test's.
			strings.HasPrefix(trimmed, "maxconn "):
			continue
		case strings.HasPrefix(trimmed, "server "):
			if !serversWritten {
				for i, r := range d.replicas {
					out = append(out, fmt.Sprintf("    server dev8-%d %s check", i+1, r.addr))
				}
				serversWritten = true
			}
			continue
		}
		out = append(out, line)
	}
	out = append(out, "frontend supervisors", "    bind "+agents, "    default_backend dev8", "")
	dir := d.t.TempDir()
	// The stats socket, where the test reads which servers are up.
	d.stats = filepath.Join(dir, "stats.sock")
	for i, line := range out {
		if strings.TrimSpace(line) == "global" {
			out = slices.Insert(out, i+1, "    stats socket "+d.stats+" mode 600 level operator")
			break
		}
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		d.t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		d.t.Fatalf("HAProxy refuses the configuration: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	d.haproxyDone = done
	d.haproxyLog = &log
	d.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if d.t.Failed() {
			d.t.Logf("HAProxy's log:\n%s", tail(log.String(), 60))
		}
	})
}

// awaitInRotation waits until HAProxy sends requests to r again.
func (d *deployment) awaitInRotation(r *replica) {
	d.t.Helper()
	name := fmt.Sprintf("dev8-%d", slices.Index(d.replicas, r)+1)
	wait.Succeeds(d.ctx, d.t, name+" to be UP in HAProxy", func() error {
		status, err := d.serverStatus(name)
		if err == nil && status != "UP" {
			err = fmt.Errorf("%s is %s", name, status)
		}
		return err
	}, wait.Every(100*time.Millisecond))
}

// serverStatus is HAProxy's word on server name of backend dev8 ("UP",
// "DOWN", …), from its stats socket.
func (d *deployment) serverStatus(name string) (string, error) {
	conn, err := net.Dial("unix", d.stats)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("show stat\n")); err != nil {
		return "", err
	}
	rows, err := csv.NewReader(conn).ReadAll()
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", errors.New("no stats")
	}
	col := slices.Index(rows[0], "status")
	for _, row := range rows[1:] {
		if len(row) > col && col >= 0 && row[0] == "dev8" && row[1] == name {
			return row[col], nil
		}
	}
	return "", fmt.Errorf("no server %s in HAProxy's stats", name)
}

// writeCertificate makes a self-signed certificate for ip and writes it
// with its key as HAProxy wants it (one PEM file).
func writeCertificate(t testing.TB, ip string) (*x509.CertPool, string) {
	t.Helper()
	c := testcert.New(t, ip)
	pemFile := filepath.Join(t.TempDir(), "dev8.pem")
	if err := os.WriteFile(pemFile, append(c.KeyPEM, c.CertPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	return c.Pool, pemFile
}

// signUp makes the first user through the load balancer.
func (d *deployment) signUp() string {
	d.t.Helper()
	anon := sdk.New(d.URL, "", sdk.WithHTTPClient(d.client))
	if _, err := anon.Signup(d.ctx, serverproc.AdminEmail, serverproc.AdminPassword, "Ada"); err != nil {
		d.t.Fatal(err)
	}
	token, _, err := anon.Login(d.ctx, serverproc.AdminEmail, serverproc.AdminPassword)
	if err != nil {
		d.t.Fatal(err)
	}
	return token
}

// viaLB is the admin's client through the load balancer; via(r) through
// replica r alone.
func (d *deployment) viaLB() *sdk.Client {
	return sdk.New(d.URL, d.admin, sdk.WithHTTPClient(d.client))
}

func (d *deployment) via(r *replica) *sdk.Client { return sdk.New(r.URL(), d.admin) }

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

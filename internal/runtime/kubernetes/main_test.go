package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"k8s.io/client-go/kubernetes"

	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/internal/testutil/k8stest"
	"dev8.dev/dev8/internal/tunnel"
)

// The cluster tests run on the real single-node cluster of
// scripts/k8s-test-cluster.sh (up), with a Docker engine to build their
// images, which they copy into the node's containerd (no registry). Without
// them they skip, unless CI is set: then they fail.
//
// TestMain builds the small supervisor (static) into supervisorImage (FROM
// scratch, /dev8-supervisor) and the workspace image testImage (FROM
// scratch with busybox as /bin/sh), loads both into the node, and makes a
// namespace of its own that enforces Pod Security "restricted", which it
// deletes at the end. (internal/testutil/k8stest does the cluster's part.)

const (
	testImage       = "dev8-test/k8s-busybox:latest"
	supervisorImage = "dev8-test/k8s-supervisor:latest"
	// dashImage has a shell (Debian's dash) and nothing else: no curl,
	// no wget to fetch the supervisor with.
	dashImage = "dev8-test/k8s-dash:latest"
)

var (
	// unavailable says why the cluster tests cannot run; empty when they can.
	unavailable string
	cluster     *k8stest.Cluster
	cli         kubernetes.Interface
	// testNamespace is the namespace this run made.
	testNamespace string
	// hostIP is this host's address on the cluster's network, which pods
	// reach.
	hostIP string
	// buildDir holds what the run builds; removed at its end.
	buildDir string
	// testAgentURL serves the small supervisor, as the server does, to
	// the pods of runtimes with SupervisorFromServer (fromServer); pods
	// reach it at hostIP. tamperedAgentURL serves it with a checksum that
	// is not its.
	testAgentURL, tamperedAgentURL string
	// testTunnels holds the tunnels the test agent at testAgentURL takes
	// from the supervisors: runtimes with fromServer learn from it that a
	// pod's supervisor dialed in (Config.SupervisorConnected), as the
	// server's runtime does.
	testTunnels = tunnel.NewRegistry(slog.New(slog.DiscardHandler))
)

// testAgentToken is the agent token the test agent wants.
const testAgentToken = "dev8a_runtime-tests"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "dev8-k8s-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	buildDir = tmp
	var agents []*http.Server
	if err := setup(tmp, &agents); err != nil {
		unavailable = err.Error()
	}
	code := m.Run()
	for _, a := range agents {
		a.Close()
	}
	testTunnels.Close()
	if testNamespace != "" {
		if err := cluster.DeleteNamespace(context.Background(), testNamespace); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: remove the test namespace %s: %v\n", testNamespace, err)
			code = 1
		}
	}
	return code
}

func setup(tmp string, agents *[]*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := k8stest.Find(ctx)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker is needed to build the test images: %w", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("busybox-static is needed for the test image (run scripts/dockerd.sh): %w", err)
	}
	images, err := testImages(ctx, tmp)
	if err != nil {
		return err
	}
	if err := c.BuildAndLoad(ctx, images...); err != nil {
		return err
	}
	for _, a := range []struct {
		url    *string
		tamper bool
	}{{&testAgentURL, false}, {&tamperedAgentURL, true}} {
		srv, url, err := startTestAgent(c.HostIP, filepath.Join(tmp, "dev8-supervisor"), a.tamper)
		if err != nil {
			return err
		}
		*agents = append(*agents, srv)
		*a.url = url
	}
	ns, err := c.CreateNamespace(ctx)
	if err != nil {
		return err
	}
	cluster, cli, hostIP, testNamespace = c, c.Client, c.HostIP, ns
	return nil
}

// startTestAgent serves the supervisor at path to pods as the server's GET
// /api/v1/environments/{id}/supervisor does, to the bearer of
// testAgentToken, on hostIP; tamper sends a checksum that is not its.
// The untampered one also takes the supervisors' tunnels into testTunnels
// (GET /api/v1/environments/{id}/tunnel, a websocket); everything else is
// a 404.
func startTestAgent(hostIP, path string, tamper bool) (*http.Server, string, error) {
	served, err := supervisorbin.NewServed(path)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(hostIP, "0"))
	if err != nil {
		return nil, "", fmt.Errorf("listen on the cluster's host address: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/environments/")
		id, what, _ := strings.Cut(id, "/")
		if !ok || id == "" || (what != "supervisor" && (what != "tunnel" || tamper)) {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testAgentToken {
			http.Error(w, "not the agent's token", http.StatusUnauthorized)
			return
		}
		if what == "tunnel" {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			_ = testTunnels.Serve(r.Context(), id, websocket.NetConn(r.Context(), ws, websocket.MessageBinary))
			return
		}
		if tamper {
			w = tampered{w, func(h http.Header) { h.Set(supervisorbin.HeaderSHA256, strings.Repeat("ab", 32)) }}
		}
		if err := served.Serve(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String(), nil
}

// testImages are the supervisor image and the test workspace image.
func testImages(ctx context.Context, tmp string) ([]k8stest.Image, error) {
	sup := filepath.Join(tmp, "dev8-supervisor")
	if err := k8stest.BuildStatic(ctx, "./cmd/dev8-supervisor", sup); err != nil {
		return nil, err
	}
	supBin, err := os.ReadFile(sup)
	if err != nil {
		return nil, err
	}
	// Shows that a new home volume starts with the image's home.
	ws, err := k8stest.WorkspaceImage(testImage, k8stest.File{Name: "home/seeded-by-image", Mode: 0o644, Data: []byte("from the image\n")})
	if err != nil {
		return nil, err
	}
	dash, err := dashImageFiles()
	if err != nil {
		return nil, err
	}
	return []k8stest.Image{
		{Tag: dashImage, Files: dash},
		{Tag: supervisorImage, Files: []k8stest.File{
			{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\nCOPY dev8-supervisor /dev8-supervisor\n")},
			{Name: "dev8-supervisor", Mode: 0o755, Data: supBin},
		}},
		ws,
	}, nil
}

// dashImageFiles: this machine's dash as /bin/sh, with the C library it
// is linked with, a home and /tmp.
func dashImageFiles() ([]k8stest.File, error) {
	files := []k8stest.File{
		{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\nCOPY root /\n")},
		{Name: "root/tmp/", Mode: 0o1777, Dir: true},
		{Name: "root/home/dev8/", Mode: 0o755, Dir: true},
	}
	for _, f := range []struct{ from, to string }{
		{"/usr/bin/dash", "bin/sh"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6"},
		{"/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2"},
	} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			return nil, fmt.Errorf("the test image without curl or wget needs %s (Debian's dash): %w", f.from, err)
		}
		files = append(files, k8stest.File{Name: "root/" + f.to, Mode: 0o755, Data: data})
	}
	return files, nil
}

// needCluster skips the test when no cluster can run it (fails it under CI).
func needCluster(t *testing.T) {
	t.Helper()
	k8stest.Need(t, unavailable)
}

// kubectl runs kubectl on the test cluster.
func kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return cluster.Run(ctx, stdin, args...)
}

// For the end-to-end tests in package kubernetes_test, which drive a whole
// dev8 server and so cannot live in this package (the server imports it).
var (
	// TestCluster is the test cluster, nil when TestUnavailable says why.
	TestCluster = func() *k8stest.Cluster { return cluster }
	// TestUnavailable says why the cluster tests cannot run ("" if they can).
	TestUnavailable = func() string { return unavailable }
	// TestImage is the busybox workspace image loaded into the node.
	TestImage = testImage
	// TestSupervisorImage is the supervisor image loaded into the node.
	TestSupervisorImage = supervisorImage
	// TestDev8Binary builds the static dev8 (server and CLI) once, at the
	// first call: only the tests that run it wait for it.
	TestDev8Binary = dev8Binary
)

var dev8Build struct {
	once sync.Once
	path string
	err  error
}

func dev8Binary(ctx context.Context) (string, error) {
	dev8Build.once.Do(func() {
		path := filepath.Join(buildDir, "dev8")
		dev8Build.err = k8stest.BuildStatic(ctx, "./cmd/dev8", path)
		dev8Build.path = path
	})
	return dev8Build.path, dev8Build.err
}

package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/supervisortest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// The test binary doubles as `dev8 supervisor` (envRunSupervisor=1) and as a
// stand-in code-server that answers /healthz (envFakeCodeServer=1 and
// code-server's --bind-addr flag).
const (
	envRunSupervisor  = "DEV8_TEST_RUN_SUPERVISOR"
	envFakeCodeServer = "DEV8TEST_FAKE_CODE_SERVER"
)

// raceEnv keeps -race children from sleeping 1 s at exit and collects their
// reports where TestMain checks them.
var raceEnv string

func TestMain(m *testing.M) {
	if os.Getenv(envFakeCodeServer) == "1" {
		if i := slices.Index(os.Args, "--bind-addr"); i > 0 && i+1 < len(os.Args) {
			fakeCodeServer(os.Args[i+1])
			os.Exit(0)
		}
		if i := slices.Index(os.Args, "--socket"); i > 0 && i+1 < len(os.Args) {
			fakeCodeServerSocket(os.Args[i+1])
			os.Exit(0)
		}
	}
	if os.Getenv(envRunSupervisor) == "1" {
		if err := Main(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "supervisor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	raceDir, err := os.MkdirTemp("", "dev8-race-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raceEnv = "GORACE=atexit_sleep_ms=0 log_path=" + filepath.Join(raceDir, "report")
	code := m.Run()
	if reports, _ := filepath.Glob(filepath.Join(raceDir, "report*")); len(reports) > 0 {
		for _, r := range reports {
			data, _ := os.ReadFile(r)
			fmt.Fprintf(os.Stderr, "FAIL: data race in a child process (%s):\n%s\n", r, data)
		}
		code = 1
	}
	_ = os.RemoveAll(raceDir)
	os.Exit(code)
}

func fakeCodeServer(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"alive","lastHeartbeat":1700000000000}`)
	})
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, "fake code-server:", err)
		os.Exit(1)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fakeCodeServerScript runs this test binary as the stand-in code-server.
func fakeCodeServerScript(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	race := strings.TrimPrefix(raceEnv, "GORACE=")
	return supervisortest.Script(t, fmt.Sprintf("export %s=1 GORACE='%s'\nexec '%s' \"$@\"\n", envFakeCodeServer, race, exe))
}

func testConfig(t *testing.T) Config {
	return Config{
		EnvironmentID:     "env-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		WorkspaceDir:      t.TempDir(),
		Addr:              freeAddr(t),
		CodeServerAddr:    freeAddr(t),
		HomeDir:           t.TempDir(),
		StopTimeout:       time.Second,
		RestartBackoffMin: 10 * time.Millisecond,
		RestartBackoffMax: 40 * time.Millisecond,
		HealthInterval:    50 * time.Millisecond,
		Logger:            supervisortest.Logger(),
	}
}

// runSupervisor runs Run in the background; the returned func cancels it
// and returns its error.
func runSupervisor(t *testing.T, cfg Config) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg) }()
	var err error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return 30s after cancel")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func getStatus(ctx context.Context, cfg Config) (agentapi.Status, error) {
	var st agentapi.Status
	err := getJSON(ctx, "http://"+cfg.Addr+"/status", &st)
	return st, err
}

// gone reports whether pid has exited (a zombie counts).
func gone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i < 0 || i+2 >= len(data) || data[i+2] == 'Z'
}

func readPids(t *testing.T, ctx context.Context, path string) []int {
	t.Helper()
	wait.Eventually(ctx, t, path, func() bool { _, err := os.Stat(path); return err == nil })
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestHealthAndStatus(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	stop := runSupervisor(t, cfg)

	var health map[string]string
	wait.Eventually(ctx, t, "/health", func() bool { return getJSON(ctx, "http://"+cfg.Addr+"/health", &health) == nil })
	if health["status"] != "healthy" {
		t.Errorf("/health = %v", health)
	}
	st, err := getStatus(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.EnvironmentID != cfg.EnvironmentID || st.WorkspaceDir != cfg.WorkspaceDir || st.PID != os.Getpid() ||
		st.CodeServer.State != agentapi.CodeServerAbsent || st.UptimeSeconds < 0 || st.StartedAt.IsZero() {
		t.Errorf("/status = %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if _, err := net.DialTimeout("tcp", cfg.Addr, time.Second); err == nil {
		t.Error("status endpoint still listening after Run returned")
	}
}

func TestAddrInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.Addr = ln.Addr().String()
	if err := Run(t.Context(), cfg); err == nil {
		t.Fatal("Run with a taken status address returned nil")
	}
}

func TestCodeServerHealthy(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	cfg.CodeServer = fakeCodeServerScript(t)
	stop := runSupervisor(t, cfg)

	var st agentapi.Status
	wait.Eventually(ctx, t, "code-server running", func() bool {
		var err error
		st, err = getStatus(ctx, cfg)
		return err == nil && st.CodeServer.State == agentapi.CodeServerRunning
	})
	cs := st.CodeServer
	if cs.PID == 0 || cs.Address != cfg.CodeServerAddr || cs.LastHealthyAt == nil || cs.Health != "alive" ||
		cs.LastHeartbeat == nil || cs.LastHeartbeat.UnixMilli() != 1700000000000 || cs.Restarts != 0 {
		t.Errorf("code-server status = %+v", cs)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !gone(cs.PID) {
		t.Errorf("code-server (pid %d) outlived the supervisor", cs.PID)
	}
}

func TestCodeServerArgs(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	cfg.CodeServer = supervisortest.Script(t, `printf '%s\n' "$PWD" "$@" > args.tmp && mv args.tmp args; exec sleep 300`+"\n")
	runSupervisor(t, cfg)
	path := filepath.Join(cfg.WorkspaceDir, "args")
	wait.Eventually(ctx, t, "the args file", func() bool { _, err := os.Stat(path); return err == nil })
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data2 := filepath.Join(cfg.HomeDir, ".local", "share", "code-server")
	want := []string{
		cfg.WorkspaceDir, // cwd
		"--auth", "none", "--bind-addr", cfg.CodeServerAddr, "--disable-telemetry", "--disable-update-check",
		"--user-data-dir", data2, "--extensions-dir", filepath.Join(data2, "extensions"),
		cfg.WorkspaceDir,
	}
	if got := strings.Split(strings.TrimSpace(string(data)), "\n"); !slices.Equal(got, want) {
		t.Errorf("code-server ran as\n%q\nwant\n%q", got, want)
	}
}

// TestCodeServerRestarts: a code-server that keeps dying is restarted with
// backoff, and what it left in its process group is killed each time.
func TestCodeServerRestarts(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	cfg.CodeServer = supervisortest.Script(t, `sleep 300 &
echo $! >> helpers
exit 3
`)
	stop := runSupervisor(t, cfg)
	var st agentapi.Status
	wait.Eventually(ctx, t, "three restarts", func() bool {
		var err error
		st, err = getStatus(ctx, cfg)
		return err == nil && st.CodeServer.Restarts >= 3
	})
	if st.CodeServer.LastExit != "exit status 3" || st.CodeServer.LastExitAt == nil {
		t.Errorf("code-server status = %+v", st.CodeServer)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := getStatus(ctx, cfg); err == nil {
		t.Errorf("status still served after stop: %+v", st)
	}
	for _, pid := range readPids(t, ctx, filepath.Join(cfg.WorkspaceDir, "helpers")) {
		wait.Eventually(ctx, t, fmt.Sprintf("helper %d to die", pid), func() bool { return gone(pid) })
	}
}

func TestCodeServerMissing(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	cfg.CodeServer = filepath.Join(t.TempDir(), "no-such-code-server")
	runSupervisor(t, cfg)
	wait.Eventually(ctx, t, "a failed start to be reported", func() bool {
		st, err := getStatus(ctx, cfg)
		return err == nil && strings.Contains(st.CodeServer.LastExit, "no such file")
	})
	// The supervisor itself stays up: the rest of the workspace works
	// without an IDE.
	var health map[string]string
	if err := getJSON(ctx, "http://"+cfg.Addr+"/health", &health); err != nil {
		t.Fatal(err)
	}
}

// TestStopKillsStubbornCodeServer: a code-server that ignores SIGTERM, with a
// helper that does too, is killed after StopTimeout.
func TestStopKillsStubbornCodeServer(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	cfg.StopTimeout = 200 * time.Millisecond
	cfg.CodeServer = supervisortest.Script(t, `trap "" TERM
sleep 300 &
echo "$$ $!" > pids.tmp && mv pids.tmp pids
exec sleep 301
`)
	stop := runSupervisor(t, cfg)
	pids := readPids(t, ctx, filepath.Join(cfg.WorkspaceDir, "pids"))
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < cfg.StopTimeout || d > 10*time.Second {
		t.Errorf("stop took %v; want SIGKILL after %v", d, cfg.StopTimeout)
	}
	for _, pid := range pids {
		wait.Eventually(ctx, t, fmt.Sprintf("pid %d to die", pid), func() bool { return gone(pid) })
	}
}

// TestMainHandlesSIGTERM runs the supervisor as its own process, as the
// runtime does, and stops it with SIGTERM.
func TestMainHandlesSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cmd := exec.Command(exe)
	cmd.Env = []string{
		envRunSupervisor + "=1",
		raceEnv,
		"HOME=" + cfg.HomeDir,
		"PATH=" + os.Getenv("PATH"),
		agentapi.EnvEnvironmentID + "=" + cfg.EnvironmentID,
		agentapi.EnvWorkspaceDir + "=" + cfg.WorkspaceDir,
		agentapi.EnvSupervisorAddr + "=" + cfg.Addr,
		agentapi.EnvCodeServer + "=" + fakeCodeServerScript(t),
		agentapi.EnvCodeServerAddr + "=" + cfg.CodeServerAddr,
		agentapi.EnvStopTimeout + "=2s",
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
		if t.Failed() {
			t.Logf("supervisor output:\n%s", out.String())
		}
		waited <- nil
	})

	var st agentapi.Status
	wait.Eventually(ctx, t, "code-server running", func() bool {
		var err error
		st, err = getStatus(ctx, cfg)
		return err == nil && st.CodeServer.State == agentapi.CodeServerRunning
	})
	if st.PID != cmd.Process.Pid || st.EnvironmentID != cfg.EnvironmentID {
		t.Errorf("/status = %+v", st)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		waited <- err
		if err != nil {
			t.Fatalf("supervisor exited with %v after SIGTERM, want status 0", err)
		}
	case <-ctx.Done():
		t.Fatal("supervisor did not exit after SIGTERM")
	}
	if !gone(st.CodeServer.PID) {
		t.Errorf("code-server (pid %d) outlived the supervisor", st.CodeServer.PID)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(agentapi.EnvEnvironmentID, "")
	if _, err := ConfigFromEnv(); err == nil {
		t.Error("ConfigFromEnv without an environment id succeeded")
	}
	t.Setenv(agentapi.EnvEnvironmentID, "env-1")
	t.Setenv(agentapi.EnvWorkspaceDir, "/ws")
	t.Setenv(agentapi.EnvSupervisorAddr, "127.0.0.1:1")
	t.Setenv(agentapi.EnvCodeServer, "/bin/code-server")
	t.Setenv(agentapi.EnvCodeServerAddr, "127.0.0.1:2")
	t.Setenv(agentapi.EnvStopTimeout, "3s")
	t.Setenv("HOME", "/home/w")
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{EnvironmentID: "env-1", WorkspaceDir: "/ws", Addr: "127.0.0.1:1", CodeServer: "/bin/code-server",
		CodeServerAddr: "127.0.0.1:2", HomeDir: "/home/w", StopTimeout: 3 * time.Second}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("ConfigFromEnv = %+v, want %+v", cfg, want)
	}
	t.Setenv(agentapi.EnvStopTimeout, "soon")
	if _, err := ConfigFromEnv(); err == nil {
		t.Error("ConfigFromEnv accepted a bad stop timeout")
	}
}

// TestCodeServerGetsNoAgentToken: code-server's terminals are user
// processes; the supervisor's credential must not reach them.
func TestCodeServerGetsNoAgentToken(t *testing.T) {
	t.Setenv(agentapi.EnvAgentToken, "dev8a_secret")
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	dump := filepath.Join(t.TempDir(), "env.txt")
	cfg.CodeServer = supervisortest.Script(t, "env > '"+dump+".tmp' && mv '"+dump+".tmp' '"+dump+"'\nexec sleep 1000\n")
	runSupervisor(t, cfg)
	var data []byte
	wait.Eventually(ctx, t, "code-server to start", func() bool {
		var err error
		data, err = os.ReadFile(dump)
		return err == nil
	})
	if strings.Contains(string(data), "dev8a_secret") {
		t.Fatal("code-server's environment carries the agent token")
	}
	if !strings.Contains(string(data), agentapi.EnvEnvironmentID+"="+cfg.EnvironmentID) {
		t.Fatalf("code-server's environment lacks %s:\n%s", agentapi.EnvEnvironmentID, data)
	}
}

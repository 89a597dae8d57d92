package local

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dev8.dev/dev8/internal/supervisor"
)

// The test binary doubles as the workspace's processes, so no separately
// built dev8 binary is needed:
//   - with envRunSupervisor=1 it is `dev8 supervisor`;
//   - with envFakeCodeServer=1 and code-server's --bind-addr flag it is a
//     stand-in code-server that answers /healthz (the real one is tested when
//     DEV8_CODE_SERVER is set).
//
// The fake check comes first because the supervisor's children inherit its
// environment.
const (
	envRunSupervisor  = "DEV8_TEST_RUN_SUPERVISOR"
	envFakeCodeServer = "DEV8TEST_FAKE_CODE_SERVER"
	// envOwner marks every process the tests start (directly or through a
	// workspace) so TestMain can tell whether any outlived its test.
	envOwner = "DEV8TEST_OWNER"
)

var ownerMark = envOwner + "=" + strconv.Itoa(os.Getpid())

// raceEnv is GORACE for the workspace processes the tests start (they are
// this binary, so built with -race when the tests are): no 1 s sleep at
// exit, which would slow every Stop, and reports written where TestMain
// finds them, since a child's report would otherwise only reach its log.
var raceEnv string

func TestMain(m *testing.M) {
	if os.Getenv(envFakeCodeServer) == "1" {
		if i := slices.Index(os.Args, "--bind-addr"); i > 0 && i+1 < len(os.Args) {
			fakeCodeServer("tcp", os.Args[i+1])
			os.Exit(0)
		}
		if i := slices.Index(os.Args, "--socket"); i > 0 && i+1 < len(os.Args) {
			fakeCodeServer("unix", os.Args[i+1])
			os.Exit(0)
		}
	}
	if os.Getenv(envRunSupervisor) == "1" {
		if err := supervisor.Main(context.Background()); err != nil {
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
			fmt.Fprintf(os.Stderr, "FAIL: data race in a workspace process (%s):\n%s\n", r, data)
		}
		code = 1
	}
	_ = os.RemoveAll(raceDir)
	if leaked := leakedProcesses(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes outlived the tests: %v\n", leaked)
		for _, pid := range leaked {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	os.Exit(code)
}

// leakedProcesses returns the live processes carrying ownerMark, after
// giving ones killed at the very end a moment to go.
func leakedProcesses() []int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var pids []int
		procs, _ := snapshot()
		for pid, s := range procs {
			if s.dead() || pid == os.Getpid() {
				continue
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err == nil && slices.Contains(strings.Split(string(env), "\x00"), ownerMark) {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fakeCodeServer(network, addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"alive","lastHeartbeat":0}`)
	})
	// Exits on SIGTERM by the default disposition, like code-server.
	ln, err := net.Listen(network, addr)
	if err == nil {
		err = http.Serve(ln, mux)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake code-server:", err)
		os.Exit(1)
	}
}

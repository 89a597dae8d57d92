package supervisor

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/codeserver"
	"dev8.dev/dev8/internal/supervisor/supervisortest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// fakeCodeServerSocket is the stand-in code-server listening on a unix
// socket, as code-server --socket does (it fails, as code-server would,
// when the path is taken).
func fakeCodeServerSocket(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake code-server:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"alive","lastHeartbeat":1700000000000}`)
	})
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "fake code-server:", err)
		os.Exit(1)
	}
}

// TestCodeServerSocket: with a unix: address code-server is started with
// --socket (over the stale socket of an earlier one), and its health is
// checked over the socket.
func TestCodeServerSocket(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Long)
	cfg := testConfig(t)
	sock := filepath.Join(t.TempDir(), "cs.sock")
	supervisortest.StaleSocket(t, sock)
	cfg.CodeServerAddr = "unix:" + sock
	cfg.CodeServer = fakeCodeServerScript(t)
	if args := codeserver.New(cfg.codeServer()).Args(); !slices.Equal(args[:4], []string{"--auth", "none", "--socket", sock}) {
		t.Errorf("args = %q", args)
	}
	stop := runSupervisor(t, cfg)
	var st agentapi.Status
	wait.Eventually(ctx, t, "code-server running on its socket", func() bool {
		var err error
		st, err = getStatus(ctx, cfg)
		return err == nil && st.CodeServer.State == agentapi.CodeServerRunning
	})
	if st.CodeServer.Health != "alive" || st.CodeServer.Restarts != 0 {
		t.Errorf("code-server status = %+v", st.CodeServer)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

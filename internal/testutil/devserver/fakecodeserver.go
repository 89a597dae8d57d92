package devserver

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coder/websocket"
)

// fakeCodeServerEnv marks a test binary started as a workspace's
// code-server (see FakeCodeServer).
const fakeCodeServerEnv = "DEV8_TEST_FAKE_CODE_SERVER"

// FakeCodeServer returns an executable to give the server as its
// code-server (server.Config.CodeServer): the test binary itself, which
// answers code-server's /healthz and, on any other path, echoes websocket
// messages or answers a plain request with its path. It lets a test reach
// a workspace's IDE through the server without code-server installed.
func FakeCodeServer(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "code-server")
	content := fmt.Sprintf("#!/bin/sh\nexport %s=1 GORACE=atexit_sleep_ms=0\nexec '%s' \"$@\"\n", fakeCodeServerEnv, exe)
	if err := os.WriteFile(script, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// runFakeCodeServer serves as FakeCodeServer says on the address
// code-server's flags name (--bind-addr host:port or --socket path).
func runFakeCodeServer(args []string) error {
	var ln net.Listener
	var err error
	switch {
	case slices.Contains(args, "--socket"):
		path := args[slices.Index(args, "--socket")+1]
		_ = os.Remove(path)
		ln, err = net.Listen("unix", path)
	case slices.Contains(args, "--bind-addr"):
		ln, err = net.Listen("tcp", args[slices.Index(args, "--bind-addr")+1])
	default:
		return fmt.Errorf("fake code-server: no --bind-addr or --socket in %q", args)
	}
	if err != nil {
		return fmt.Errorf("fake code-server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"alive","lastHeartbeat":1700000000000}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			fmt.Fprint(w, "fake code-server: "+r.URL.Path)
			return
		}
		// The server proxies the IDE with the Host it names itself;
		// origins are not this fake's concern.
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if err := ws.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	return http.Serve(ln, mux)
}

package supervisor

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/tunnel"
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

// staleSocket leaves a socket file at path with nothing listening, as a
// code-server that was killed does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
}

// TestCodeServerSocket: with a unix: address code-server is started with
// --socket (over the stale socket of an earlier one), and its health is
// checked over the socket.
func TestCodeServerSocket(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	cfg := testConfig(t)
	sock := filepath.Join(t.TempDir(), "cs.sock")
	staleSocket(t, sock)
	cfg.CodeServerAddr = "unix:" + sock
	cfg.CodeServer = fakeCodeServerScript(t)
	if args := (&codeServer{cfg: cfg}).args(); !slices.Equal(args[:4], []string{"--auth", "none", "--socket", sock}) {
		t.Errorf("args = %q", args)
	}
	stop := runSupervisor(t, cfg)
	var st agentapi.Status
	waitFor(t, ctx, "code-server running on its socket", func() bool {
		var err error
		st, err = status(ctx, cfg)
		return err == nil && st.CodeServer.State == agentapi.CodeServerRunning
	})
	if st.CodeServer.Health != "alive" || st.CodeServer.Restarts != 0 {
		t.Errorf("code-server status = %+v", st.CodeServer)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamsIDESocket: the IDE stream reaches a code-server on a socket.
func TestStreamsIDESocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "ide.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ts := newTestStreams(t, func(c *StreamsConfig) { c.CodeServerAddr = "unix:" + sock })
	c, err := ts.dial(tunnel.Header{Service: tunnel.ServiceIDE})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "GET / HTTP/1.1\r\n\r\n")
}

func TestRemoveStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	staleSocket(t, sock)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"unix:" + sock, file, "127.0.0.1:1", "unix:" + filepath.Join(dir, "missing")} {
		if err := removeStaleSocket(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("stale socket still there: %v", err)
	}
	if _, err := os.Lstat(file); err != nil {
		t.Errorf("a regular file was removed: %v", err)
	}
}

package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"

	"dev8.dev/dev8/internal/testutil/wait"
)

// TestServerPrintsURL: once dev8 server listens it prints, on standard
// output, the URL to open: the real address when --addr has port 0, the
// access URL (and where it listens) when one is configured.
func TestServerPrintsURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"port 0", nil, regexp.MustCompile(`^Dev8 is ready: open http://(127\.0\.0\.1:[1-9][0-9]*)$`)},
		{"access URL", []string{"--access-url", "https://dev8.example.com/"},
			regexp.MustCompile(`^Dev8 is ready: open https://dev8\.example\.com \(listening on (127\.0\.0\.1:[1-9][0-9]*)\)$`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(wait.Context(t, wait.Medium))
			args := append([]string{"server", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--runtime", "local", "--code-server", "off"}, c.args...)
			root := NewRoot()
			root.SetArgs(args)
			out, w := io.Pipe()
			root.SetOut(w)
			root.SetErr(io.Discard)
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx); w.Close() }()
			defer func() {
				cancel()
				go func() { _, _ = io.Copy(io.Discard, out) }()
				if err := <-done; err != nil {
					t.Errorf("dev8 server: %v", err)
				}
			}()

			sc := bufio.NewScanner(out)
			if !sc.Scan() {
				t.Fatalf("dev8 server printed nothing: %v", sc.Err())
			}
			m := c.want.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Fatalf("dev8 server printed %q, want %s", sc.Text(), c.want)
			}
			// The address printed is the one it serves.
			resp, err := http.Get("http://" + m[1] + "/health")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /health at the printed address: %d", resp.StatusCode)
			}
		})
	}
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

var (
	tunnelFigures bool
	scpSize       int64
	scpRuns       int
	ptyKeys       int
	scpCipher     string
)

func init() {
	flag.BoolVar(&tunnelFigures, "tunnel", true, "measure scp through dev8 ssh --stdio against a local OpenSSH server, and the web terminal's keystroke round trip")
	flag.Int64Var(&scpSize, "scp-size", 1<<30, "bytes copied by each scp run")
	flag.IntVar(&scpRuns, "scp-runs", 3, "scp runs per path (through dev8, direct)")
	flag.StringVar(&scpCipher, "scp-cipher", "", "cipher both scp paths ask for (scp -c; empty: the OpenSSH client's default order, which picks chacha20-poly1305@openssh.com)")
	flag.IntVar(&ptyKeys, "pty-keys", 1000, "keystrokes timed over the web terminal (at most 4,000: they stay on one line of cat's terminal)")
}

// tunnelBench measures, on a running local workspace, scp throughput
// through `dev8 ssh --stdio` against scp to an OpenSSH server on loopback,
// and the web terminal's keystroke round trip.
func tunnelBench(ctx context.Context, o options, url, token, envID string) error {
	if !tunnelFigures {
		results.Skipped = append(results.Skipped, "tunnel throughput and keystroke round trip: -tunnel=false")
		return nil
	}
	if err := ptyBench(ctx, url, token, envID); err != nil {
		return fmt.Errorf("pty: %w", err)
	}
	return scpBench(ctx, o, url, token, envID)
}

// ptyBench opens the web terminal running cat and times ptyKeys single
// keystrokes until the terminal's echo of each comes back.
func ptyBench(ctx context.Context, url, token, envID string) error {
	if ptyKeys < 1 || ptyKeys > 4000 {
		return fmt.Errorf("-pty-keys %d: must be 1 to 4,000", ptyKeys)
	}
	fmt.Printf("== PTY keystroke round trip (local runtime, %d keys)\n", ptyKeys)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/api/v1/environments/" + envID + "/pty?command=cat&reconnect=" + randomHex(16)
	ws, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial %s: %w (%s)", wsURL, err, resp.Status)
		}
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer ws.CloseNow()
	out := make(chan []byte, 64)
	go func() {
		defer close(out)
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return
			}
			out <- msg
		}
	}()
	send := func(s string) error {
		msg, _ := json.Marshal(struct {
			Data string `json:"data"`
		}{s})
		return ws.Write(ctx, websocket.MessageText, msg)
	}
	// waitFor reads output until n more bytes arrived; cat's terminal
	// echoes each key as one byte (canonical mode, echo on), and nothing
	// else writes to it, so the n-th byte is the echo of the last key.
	got := 0
	waitFor := func(want int) error {
		for got < want {
			select {
			case msg, ok := <-out:
				if !ok {
					return errors.New("the terminal closed")
				}
				got += len(msg)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	// The first key also waits for cat to start.
	if err := send("w"); err != nil {
		return err
	}
	if err := waitFor(1); err != nil {
		return fmt.Errorf("first echo: %w", err)
	}
	lat := make([]float64, 0, ptyKeys)
	for i := range ptyKeys {
		t0 := time.Now()
		if err := send(string(rune('a' + i%26))); err != nil {
			return err
		}
		if err := waitFor(2 + i); err != nil {
			return fmt.Errorf("echo %d: %w", i, err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	if got != ptyKeys+1 {
		return fmt.Errorf("terminal output: %d bytes for %d keys", got, ptyKeys+1)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	fmt.Printf("   p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, lat[len(lat)-1])
	note := fmt.Sprintf("%d keys to `cat` over GET /api/v1/environments/{id}/pty, each timed until its echo came back; min/max are the fastest and slowest key", ptyKeys)
	results.Figures = append(results.Figures,
		Figure{Section: "6 tunnel", Name: "PTY keystroke round trip — p50", Engine: "sqlite", Unit: "ms", Median: p50, Min: lat[0], Max: lat[len(lat)-1], Note: note},
	)
	met := p99 <= 5
	results.Figures = append(results.Figures,
		Figure{Section: "6 tunnel", Name: "PTY keystroke round trip — p99", Engine: "sqlite", Unit: "ms", Median: p99, Min: p99, Max: p99, Target: "≤ 5 ms p99", Met: &met, Note: note},
	)
	return nil
}

// scpBench copies scpSize bytes with scp through `dev8 ssh --stdio` and to a
// throwaway OpenSSH server on loopback, scpRuns times each, alternating.
func scpBench(ctx context.Context, o options, url, token, envID string) error {
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	for _, tool := range []string{sshd, "scp", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			results.Skipped = append(results.Skipped, "tunnel throughput: "+tool+" not found (apt-get install openssh-server openssh-client)")
			return nil
		}
	}
	fmt.Printf("== scp of %d MiB: through dev8 ssh --stdio vs. direct OpenSSH on loopback\n", scpSize>>20)
	dir, err := os.MkdirTemp("", "dev8bench-scp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src.bin")
	if err := writeRandomFile(src, scpSize); err != nil {
		return err
	}
	stop, port, key, login, err := startSSHD(ctx, sshd, dir)
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	defer stop()

	common := []string{"-q", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"}
	cipher := "chacha20-poly1305@openssh.com (the client's default)"
	if scpCipher != "" {
		common = append(common, "-c", scpCipher)
		cipher = scpCipher
	}
	dst := filepath.Join(dir, "dst.bin")
	direct := append(slices.Clone(common), "-i", key, "-P", fmt.Sprint(port), src, login+"@127.0.0.1:"+dst)
	through := append(slices.Clone(common), "-o", "ProxyCommand="+o.dev8+" ssh --stdio "+envID, src, "dev8@dev8-bench:"+dst)
	env := append(os.Environ(), "DEV8_URL="+url, "DEV8_TOKEN="+token, "DEV8_CONFIG_DIR="+filepath.Join(dir, "config"))
	run := func(args []string) (float64, error) {
		_ = os.Remove(dst)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(rctx, "scp", args...)
		cmd.Env = env
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("scp: %w: %s", err, strings.TrimSpace(string(out)))
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return 0, err
		}
		if fi.Size() != scpSize {
			return 0, fmt.Errorf("scp copied %d bytes, want %d", fi.Size(), scpSize)
		}
		_ = os.Remove(dst)
		return float64(scpSize) / 1e6 / d.Seconds(), nil
	}
	var dev8, openssh, ratio []float64
	for i := range scpRuns {
		a, err := run(direct)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		b, err := run(through)
		if err != nil {
			return fmt.Errorf("through dev8 ssh: %w", err)
		}
		openssh, dev8, ratio = append(openssh, a), append(dev8, b), append(ratio, 100*b/a)
		fmt.Printf("   run %d: direct %.0f MB/s, through dev8 %.0f MB/s (%.0f %%)\n", i+1, a, b, 100*b/a)
	}
	note := fmt.Sprintf("scp (SFTP protocol, cipher %s) of %d MiB of random data to the same file system", cipher, scpSize>>20)
	addFigure(Figure{Section: "6 tunnel", Name: "scp through dev8 ssh --stdio (local workspace)", Engine: "sqlite", Unit: "MB/s", Runs: dev8, Note: note}, dev8, 0, false)
	addFigure(Figure{Section: "6 tunnel", Name: "scp direct to OpenSSH sshd on loopback", Unit: "MB/s", Runs: openssh, Note: note + "; Debian's sshd with its sftp-server"}, openssh, 0, false)
	addFigure(Figure{Section: "6 tunnel", Name: "tunnel throughput ratio (dev8 / direct)", Engine: "sqlite", Unit: "%", Runs: ratio, Target: "≥ 50 %", Note: "per run, the two copies ran back to back"}, ratio, 50, false)
	return nil
}

// startSSHD runs a throwaway sshd on a loopback port with its own host key
// and one authorized client key; stop ends it.
func startSSHD(ctx context.Context, sshd, dir string) (stop func(), port int, key, login string, err error) {
	u, err := user.Current()
	if err != nil {
		return nil, 0, "", "", err
	}
	hostKey, key := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	for _, k := range []string{hostKey, key} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			return nil, 0, "", "", fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, 0, "", "", err
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		return nil, 0, "", "", err
	}
	// A free port: the race with another listener is harmless here (sshd
	// fails to start and the benchmark says so).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, "", "", err
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	sftpServer := "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(sftpServer); err != nil {
		sftpServer = "internal-sftp"
	}
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
Subsystem sftp %s
LogLevel ERROR
`, port, hostKey, auth, u.Username, sftpServer)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, 0, "", "", err
	}
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, 0, "", "", err
		}
	}
	var stderr strings.Builder
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, "", "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return stop, port, key, u.Username, nil
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, 0, "", "", fmt.Errorf("sshd exited: %v: %s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, 0, "", "", fmt.Errorf("sshd did not listen on port %d: %s", port, stderr.String())
		}
	}
}

// writeRandomFile writes size incompressible bytes (ChaCha8, seeded from
// crypto/rand) to path.
func writeRandomFile(path string, size int64) error {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, mrand.NewChaCha8(seed), size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/sdk"
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
	flag.StringVar(&scpCipher, "scp-cipher", "", "cipher both scp paths ask for (scp -c; empty: the direct path takes the OpenSSH client's default, chacha20-poly1305@openssh.com, and the dev8 path the Ciphers line dev8 config-ssh writes)")
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
//
// The dev8 path uses the Host block `dev8 config-ssh` writes (its
// ProxyCommand and its ssh options, the cipher order included), so the
// figure is what a user's `scp file dev8.<name>:` gets. The direct path
// uses the OpenSSH client's defaults. -scp-cipher forces one cipher on
// both.
//
// Besides MB/s, which swings with whatever else the shared CPU runs, each
// run records the CPU time every process of the path spent, per GB moved:
// direct, scp and ssh plus sshd and its sftp-server; through dev8, scp,
// ssh and the `dev8 ssh --stdio` proxy plus the server (this process) and
// the workspace's supervisor.
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
	sshdProc, err := startSSHD(ctx, sshd, dir)
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	defer sshdProc.stop()
	supervisor, err := supervisorPID(envID)
	if err != nil {
		return err
	}

	env := append(os.Environ(), "DEV8_URL="+url, "DEV8_TOKEN="+token, "DEV8_CONFIG_DIR="+filepath.Join(dir, "config"))
	// What a user runs: dev8 config-ssh, then scp to the host it wrote.
	sshConfig := filepath.Join(dir, "ssh_config")
	cfgCmd := exec.CommandContext(ctx, o.dev8, "config-ssh", "--ssh-config", sshConfig)
	cfgCmd.Env = env
	if out, err := cfgCmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dev8 config-ssh: %w: %s", err, out)
	}
	environment, err := sdk.New(url, token).GetEnvironment(ctx, envID)
	if err != nil {
		return err
	}
	block, err := os.ReadFile(sshConfig)
	if err != nil {
		return err
	}
	dev8Cipher := "as dev8 config-ssh writes it"
	for _, line := range strings.Split(string(block), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Ciphers "); ok {
			dev8Cipher = v
			break
		}
	}

	common := []string{"-q", "-o", "BatchMode=yes"}
	directCipher := "chacha20-poly1305@openssh.com, the OpenSSH client's default"
	if scpCipher != "" {
		common = append(common, "-c", scpCipher)
		directCipher, dev8Cipher = scpCipher, scpCipher
	}
	dst := filepath.Join(dir, "dst.bin")
	direct := append(slices.Clone(common), "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-i", sshdProc.key, "-P", fmt.Sprint(sshdProc.port), src, sshdProc.login+"@127.0.0.1:"+dst)
	through := append(slices.Clone(common), "-F", sshConfig, src, "dev8."+environment.Name+":"+dst)

	// copyRun is one copy: its speed, and the CPU seconds the client side
	// (scp, ssh and any proxy command), this process (the dev8 server) and
	// the supervisor spent while it ran.
	type copyRun struct{ mbps, client, self, supervisor float64 }
	run := func(args []string) (copyRun, error) {
		_ = os.Remove(dst)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(rctx, "scp", args...)
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		self0, sup0 := selfCPU(), float64(procJiffies(supervisor))/100
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return copyRun{}, err
		}
		proxy := watchProxy(cmd.Process.Pid, "--stdio")
		err := cmd.Wait()
		d := time.Since(t0)
		proxyCPU := proxy.stop()
		// Taken before the copy is checked and removed: deleting 1 GiB
		// costs this process CPU that is not the server's.
		r := copyRun{self: selfCPU() - self0, supervisor: float64(procJiffies(supervisor))/100 - sup0}
		if err != nil {
			return copyRun{}, fmt.Errorf("scp: %w: %s", err, strings.TrimSpace(out.String()))
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return copyRun{}, err
		}
		if fi.Size() != scpSize {
			return copyRun{}, fmt.Errorf("scp copied %d bytes, want %d", fi.Size(), scpSize)
		}
		_ = os.Remove(dst)
		// scp's usage includes ssh, which it waits for; ssh does not wait
		// for its ProxyCommand (it sends it SIGHUP), so that is sampled.
		st := cmd.ProcessState
		r.mbps = float64(scpSize) / 1e6 / d.Seconds()
		r.client = (st.UserTime() + st.SystemTime()).Seconds() + proxyCPU
		return r, nil
	}
	gb := float64(scpSize) / 1e9
	var dev8, openssh, ratio, dev8CPU, directCPU, cpuRatio []float64
	var dev8Parts, directParts [3][]float64 // client, server, supervisor (direct: client, sshd)
	for i := range scpRuns {
		s0 := sshdProc.cpu()
		ra, err := run(direct)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		a, aClient, aServer := ra.mbps, ra.client, sshdProc.settledCPU()-s0
		rb, err := run(through)
		if err != nil {
			return fmt.Errorf("through dev8 ssh: %w", err)
		}
		b, bClient, bServer, bSup := rb.mbps, rb.client, rb.self, rb.supervisor

		openssh, dev8, ratio = append(openssh, a), append(dev8, b), append(ratio, 100*b/a)
		da, db := (aClient+aServer)/gb, (bClient+bServer+bSup)/gb
		directCPU, dev8CPU, cpuRatio = append(directCPU, da), append(dev8CPU, db), append(cpuRatio, db/da)
		directParts[0], directParts[1] = append(directParts[0], aClient/gb), append(directParts[1], aServer/gb)
		dev8Parts[0], dev8Parts[1], dev8Parts[2] = append(dev8Parts[0], bClient/gb), append(dev8Parts[1], bServer/gb), append(dev8Parts[2], bSup/gb)
		fmt.Printf("   run %d: direct %.0f MB/s, through dev8 %.0f MB/s (%.0f %%); CPU s/GB: direct %.2f (client %.2f, sshd %.2f), dev8 %.2f (client+proxy %.2f, server %.2f, supervisor %.2f)\n",
			i+1, a, b, 100*b/a, da, aClient/gb, aServer/gb, db, bClient/gb, bServer/gb, bSup/gb)
	}
	note := fmt.Sprintf("scp (SFTP protocol) of %d MiB of random data to the same file system; dev8: the Host block of dev8 config-ssh (cipher %s); direct: cipher %s", scpSize>>20, dev8Cipher, directCipher)
	addFigure(Figure{Section: "6 tunnel", Name: "scp through dev8 ssh --stdio (local workspace)", Engine: "sqlite", Unit: "MB/s", Note: note}, dev8, 0, false)
	addFigure(Figure{Section: "6 tunnel", Name: "scp direct to OpenSSH sshd on loopback", Unit: "MB/s", Note: note + "; Debian's sshd with its sftp-server"}, openssh, 0, false)
	addFigure(Figure{Section: "6 tunnel", Name: "tunnel throughput ratio (dev8 / direct)", Engine: "sqlite", Unit: "%", Target: "≥ 50 %", Note: "per run, the two copies ran back to back"}, ratio, 50, false)
	cpuNote := "user+system CPU of every process on the path, per 10^9 bytes copied"
	addFigure(Figure{Section: "6 tunnel", Name: "CPU per GB through dev8 (all processes)", Engine: "sqlite", Unit: "s/GB", Note: cpuNote + fmt.Sprintf("; medians: scp+ssh+proxy %.2f, server %.2f, supervisor %.2f", median(dev8Parts[0]), median(dev8Parts[1]), median(dev8Parts[2]))}, dev8CPU, 0, true)
	addFigure(Figure{Section: "6 tunnel", Name: "CPU per GB direct (all processes)", Unit: "s/GB", Note: cpuNote + fmt.Sprintf("; medians: scp+ssh %.2f, sshd+sftp-server %.2f", median(directParts[0]), median(directParts[1]))}, directCPU, 0, true)
	addFigure(Figure{Section: "6 tunnel", Name: "CPU per byte, dev8 / direct", Engine: "sqlite", Unit: "×", Note: "per run; less sensitive to other load on the machine than MB/s"}, cpuRatio, 0, true)
	return nil
}

// supervisorPID finds the local workspace's supervisor in the state file
// the local runtime keeps in the benchmark server's data directory.
func supervisorPID(envID string) (int, error) {
	for _, dir := range dataDirs {
		data, err := os.ReadFile(filepath.Join(dir, "workspaces", envID, "state.json"))
		if err != nil {
			continue
		}
		var st struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(data, &st); err != nil || st.PID == 0 {
			return 0, fmt.Errorf("supervisor pid from state.json: %v", err)
		}
		return st.PID, nil
	}
	return 0, fmt.Errorf("no state.json for environment %s", envID)
}

// selfCPU is this process's user+system CPU time in seconds: the
// in-process server's, on the dev8 path.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procStat reads a process's ppid, its own CPU and its reaped children's
// CPU (in seconds) from /proc/<pid>/stat.
func procStat(pid int) (ppid int, self, children float64, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, 0, 0, false
	}
	// After the command: state(0) ppid(1) ... utime(11) stime(12)
	// cutime(13) cstime(14), in USER_HZ (100 on Linux).
	f := strings.Fields(s[i+2:])
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(k int) float64 { v, _ := strconv.ParseFloat(f[k], 64); return v / 100 }
	ppid, _ = strconv.Atoi(f[1])
	return ppid, n(11) + n(12), n(13) + n(14), true
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, _, ok := procStat(p); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// proxyWatch samples the CPU time of a ProxyCommand that ssh starts and
// never waits for, so its time is in no rusage the benchmark can read.
type proxyWatch struct {
	done chan struct{}
	cpu  chan float64
}

// watchProxy looks among root's descendants for a process whose command
// line contains match and samples its CPU time every 50 ms until stop,
// which returns the last sample (the last 50 ms of a copy that already
// ended are lost: the proxy is idle then).
func watchProxy(root int, match string) *proxyWatch {
	w := &proxyWatch{done: make(chan struct{}), cpu: make(chan float64, 1)}
	go func() {
		pid, last := 0, 0.0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if pid == 0 {
				pid = findDescendant(root, match)
			}
			if pid != 0 {
				if _, self, _, ok := procStat(pid); ok {
					last = self
				}
			}
			select {
			case <-w.done:
				w.cpu <- last
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *proxyWatch) stop() float64 {
	close(w.done)
	return <-w.cpu
}

func findDescendant(root int, match string) int {
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range childrenOf(p) {
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); err == nil && strings.Contains(string(cmdline), match) {
				return c
			}
			queue = append(queue, c)
		}
	}
	return 0
}

// sshdProcess is the throwaway OpenSSH server.
type sshdProcess struct {
	pid   int
	port  int
	key   string // the client's private key
	login string
	stop  func()
}

// cpu is the CPU time of sshd and of every connection process it has
// reaped (each with its sftp-server).
func (p *sshdProcess) cpu() float64 {
	_, self, children, _ := procStat(p.pid)
	return self + children
}

// settledCPU is cpu once sshd has reaped the connection that just ended
// (waiting at most 2 s for it).
func (p *sshdProcess) settledCPU() float64 {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && len(childrenOf(p.pid)) > 0; {
		time.Sleep(10 * time.Millisecond)
	}
	return p.cpu()
}

// startSSHD runs a throwaway sshd on a loopback port with its own host key
// and one authorized client key.
func startSSHD(ctx context.Context, sshd, dir string) (*sshdProcess, error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	hostKey, key := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	for _, k := range []string{hostKey, key} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, err
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		return nil, err
	}
	// A free port: the race with another listener is harmless here (sshd
	// fails to start and the benchmark says so).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
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
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	var stderr strings.Builder
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return &sshdProcess{pid: cmd.Process.Pid, port: port, key: key, login: u.Username, stop: stop}, nil
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("sshd exited: %v: %s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("sshd did not listen on port %d: %s", port, stderr.String())
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

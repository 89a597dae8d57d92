package monitor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

// burn keeps one goroutine busy for d of wall time.
func burn(d time.Duration) {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 10000 {
			x++
		}
	}
	_ = x
}

func TestMonitorSampleOnThisMachine(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "three-mib"), make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{WorkspaceDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if m.Scope() != ScopeProcess {
		t.Fatalf("scope %q, want %q for a process that is not pid 1", m.Scope(), ScopeProcess)
	}
	burn(300 * time.Millisecond)
	s, err := m.Sample(ctx)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	t.Logf("sample: %+v", s)
	// The workspace's own files (3 MiB), not the host file system's use.
	if s.MemoryUsageMB <= 0 || s.DiskUsageMB < 3 || s.DiskUsageMB > 4 {
		t.Errorf("memory %d MB, disk %d MB: want memory > 0 and disk 3 MB", s.MemoryUsageMB, s.DiskUsageMB)
	}
	// 300 ms busy out of a little more wall time; -race and parallel tests
	// share the CPUs, so only ask for a clear signal.
	// The upper bound allows for tick rounding (10 ms per process).
	if s.CPUUsagePercent < 10 || s.CPUUsagePercent > 110*float64(runtime.NumCPU())+10 {
		t.Errorf("cpu %.1f%% after burning one core for most of the interval", s.CPUUsagePercent)
	}
	if s.NetworkInMB < 0 || s.NetworkOutMB < 0 {
		t.Errorf("network in %v out %v", s.NetworkInMB, s.NetworkOutMB)
	}
	if time.Since(s.Timestamp) > time.Minute || s.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v", s.Timestamp)
	}
}

// TestMonitorCountsReapedChildren: a child that runs and exits between two
// samples still counts, through its parent's cutime.
func TestMonitorCountsReapedChildren(t *testing.T) {
	t.Parallel()
	m, err := New(Config{WorkspaceDir: t.TempDir(), Scope: ScopeProcess})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := m.readTree()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	childCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	after, alive, err := m.readTree()
	if err != nil {
		t.Fatal(err)
	}
	got := time.Duration(cpuTicksSince(before, after, alive)) * (time.Second / userHZ)
	t.Logf("child used %v; the tree's CPU grew by %v", childCPU, got)
	// Ticks are 10 ms; the test process's own goroutines add a little.
	if got+20*time.Millisecond < childCPU {
		t.Errorf("tree CPU grew by %v, less than the reaped child's %v", got, childCPU)
	}
}

func TestCPUTicksSince(t *testing.T) {
	t.Parallel()
	const self = 10
	prev := map[int]procStat{
		self: {ppid: 1, start: 1, own: 100, kids: 0},
		11:   {ppid: self, start: 2, own: 50},  // exits, reaped by self
		12:   {ppid: self, start: 3, own: 40},  // keeps running
		13:   {ppid: 99, start: 4, own: 30},    // exits, reaped outside
		14:   {ppid: 11, start: 5, own: 20},    // exits with 11, reaped by it
		15:   {ppid: self, start: 6, own: 10},  // leaves the tree alive
		16:   {ppid: self, start: 7, own: 500}, // pid reused by another process
	}
	cur := map[int]procStat{
		// self reaped 11 (50+5 own, 20+2 from 14) and 16 (500+1).
		self: {ppid: 1, start: 1, own: 103, kids: 55 + 22 + 501},
		12:   {ppid: self, start: 3, own: 44},
		16:   {ppid: self, start: 70, own: 8},
		17:   {ppid: self, start: 80, own: 9}, // new
	}
	alive := map[int]uint64{self: 1, 12: 3, 15: 6, 16: 70, 17: 80, 99: 1}
	// Own growth: self 3, 12 4, new 16 8, new 17 9; reaped since the last
	// sample: 11 +5, 14 +2, old 16 +1.
	want := uint64(3 + 4 + 8 + 9 + 5 + 2 + 1)
	if got := cpuTicksSince(prev, cur, alive); got != want {
		t.Errorf("cpuTicksSince = %d, want %d", got, want)
	}
	if got := cpuTicksSince(nil, cur, alive); got != 0 {
		t.Errorf("without a baseline = %d, want 0", got)
	}
}

func TestReadProcStatOddName(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stat")
	line := "4242 (we) ird (name) S 7 4242 4242 0 -1 4194304 1 0 0 0 11 12 13 14 20 0 1 0 555 1000 77 18446744073709551615\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readProcStat(path)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{ppid: 7, session: 4242, own: 23, kids: 27, start: 555, rss: 77}
	if st != want {
		t.Errorf("readProcStat = %+v, want %+v", st, want)
	}
}

// TestMonitorCgroupScope uses a fake /proc and cgroup v2 tree: the scope the
// docker and kubernetes runtimes get when the supervisor is pid 1.
func TestMonitorCgroupScope(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	proc, cg := t.TempDir(), t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proc, "1", "cgroup"), "0::/\n")
	write(filepath.Join(cg, "cpu.stat"), "usage_usec 1000000\nuser_usec 800000\nsystem_usec 200000\n")
	write(filepath.Join(cg, "memory.current"), strconv.Itoa(600<<20)+"\n")
	write(filepath.Join(cg, "memory.stat"), "anon 1\nfile 2\ninactive_file "+strconv.Itoa(88<<20)+"\nactive_file 3\n")

	// One CPU-second more, over at most as long as this takes.
	start := time.Now()
	m, err := New(Config{WorkspaceDir: t.TempDir(), procRoot: proc, cgroupRoot: cg, pid: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m.Scope() != ScopeCgroup {
		t.Fatalf("auto scope as pid 1 = %q, want cgroup", m.Scope())
	}
	write(filepath.Join(cg, "cpu.stat"), "usage_usec 2000000\n")
	s, err := m.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if s.MemoryUsageMB != 600-88 {
		t.Errorf("memory %d MB, want 512 (current - inactive_file)", s.MemoryUsageMB)
	}
	if min := 100 / elapsed.Seconds(); s.CPUUsagePercent < min {
		t.Errorf("cpu %.0f%%, want at least %.0f%% (1 CPU-second in %v)", s.CPUUsagePercent, min, elapsed)
	}

	// Asked for explicitly, cgroup scope without cgroup v2 fails.
	if _, err := New(Config{Scope: ScopeCgroup, procRoot: proc, cgroupRoot: t.TempDir(), pid: 1}); err == nil {
		t.Error("cgroup scope without accounting files was accepted")
	}
	// Auto falls back to the process tree.
	write(filepath.Join(proc, "1", "stat"), "1 (dev8) S 0 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1000 10\n")
	m, err = New(Config{WorkspaceDir: t.TempDir(), procRoot: proc, cgroupRoot: t.TempDir(), pid: 1})
	if err != nil || m.Scope() != ScopeProcess {
		t.Errorf("auto without cgroup v2: scope %v, err %v", m, err)
	}
	if _, err := New(Config{Scope: "vm"}); err == nil {
		t.Error("unknown scope accepted")
	}
}

// BenchmarkMonitorSample is the supervisor's whole monitoring cost per
// interval (go test -bench MonitorSample ./internal/supervisor).
func BenchmarkMonitorSample(b *testing.B) {
	m, err := New(Config{WorkspaceDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

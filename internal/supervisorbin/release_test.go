package supervisorbin

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRelease: the embedded bytes are a read-only part of the executable's
// file mapping. Release must drop their pages from the process's RSS and
// leave their contents as they were (read again from the file). A private
// mapping of a file stands in for the executable here. Not parallel: it
// swaps the package's binary.
func TestRelease(t *testing.T) {
	const pages = 64
	size := pages * os.Getpagesize()
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i/4096)
	}
	path := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	// Not page-aligned at either end, as embedded data need not be.
	saved := binary
	binary = m[100 : size-100]
	defer func() { binary = saved }()

	if !bytes.Equal(binary, want[100:size-100]) { // touches every page
		t.Fatal("mapping does not hold the file")
	}
	if rss := mappingRSS(t, m); rss < size {
		t.Fatalf("RSS of the mapping after reading it: %d, want %d", rss, size)
	}
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	// The first and last pages are shared with whatever lies next to the
	// data, so they stay.
	if rss := mappingRSS(t, m); rss > 2*os.Getpagesize() {
		t.Fatalf("RSS of the mapping after Release: %d, want at most the 2 partial pages", rss)
	}
	if !bytes.Equal(binary, want[100:size-100]) {
		t.Fatal("Release changed the bytes")
	}
}

// mappingRSS is the Rss /proc/self/smaps gives the mapping that starts at
// m, in bytes.
func mappingRSS(t *testing.T, m []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(m))))
	// The mapping's header line, then its fields; Rss comes before the
	// next mapping's header.
	sc := bufio.NewScanner(f)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), start) {
	}
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Rss:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return 0
}

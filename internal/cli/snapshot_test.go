package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotRestore: dev8 snapshot, dev8 snapshots and dev8 restore
// (whole and --path) against a real server and workspace.
func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	h.createRunning("box")
	ssh := func(cmd string) string {
		t.Helper()
		out, errOut, err := h.run("", "ssh", "box", "--", cmd)
		if err != nil {
			t.Fatalf("dev8 ssh box -- %s: %v\n%s", cmd, err, errOut)
		}
		return out
	}
	ssh("mkdir -p src && echo v1 > src/a.txt && echo keep > b.txt")

	out, errOut, err := h.run("", "snapshot", "box")
	if err != nil || !strings.Contains(out, "Snapshot snap_") || !strings.Contains(out, " files, ") {
		t.Fatalf("dev8 snapshot: %v\n%s%s", err, out, errOut)
	}
	id := strings.Fields(strings.SplitN(out, "Snapshot snap_", 2)[1])[0]
	id = "snap_" + strings.TrimSuffix(id, ":")

	out, _, err = h.run("", "snapshots", "box")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "MANUAL") {
		t.Fatalf("dev8 snapshots: %v\n%s", err, out)
	}

	ssh("echo v2 > src/a.txt && echo changed > b.txt && echo junk > c.txt")
	if out, errOut, err := h.run("", "restore", "box", id, "--path", "src", "--yes"); err != nil || !strings.Contains(out, "Restored src") {
		t.Fatalf("dev8 restore --path src: %v\n%s%s", err, out, errOut)
	}
	if got := ssh("cat src/a.txt b.txt"); got != "v1\nchanged\n" {
		t.Fatalf("after restoring src: %q", got)
	}
	if out, errOut, err := h.run("", "restore", "box", id, "--yes"); err != nil || !strings.Contains(out, "removed 1 entries") {
		t.Fatalf("dev8 restore: %v\n%s%s", err, out, errOut)
	}
	if got := ssh("cat src/a.txt b.txt; ls"); got != "v1\nkeep\nb.txt\nsrc\n" {
		t.Fatalf("after restoring everything: %q", got)
	}
	if _, _, err := h.run("", "restore", "box", "snap_nope", "--yes"); err == nil || !strings.Contains(err.Error(), `snapshot "snap_nope" of "box" not found`) {
		t.Fatalf("dev8 restore of an unknown snapshot: %v", err)
	}

	// dev8 snapshots verify (Ada is the installation's admin): intact, then
	// a flipped byte in a stored blob is found.
	if out, errOut, err := h.run("", "snapshots", "verify"); err != nil || !strings.Contains(out, "The repository is intact.") {
		t.Fatalf("dev8 snapshots verify: %v\n%s%s", err, out, errOut)
	}
	var blobs []string
	if err := filepath.WalkDir(filepath.Join(h.dataDir, "backups", "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			blobs = append(blobs, p)
		}
		return err
	}); err != nil || len(blobs) == 0 {
		t.Fatalf("blobs in the repository: %d, %v", len(blobs), err)
	}
	data, err := os.ReadFile(blobs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blobs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = h.run("", "snapshots", "verify")
	if err == nil || !strings.Contains(out, "corrupt") || !strings.Contains(out, filepath.Base(blobs[0])) {
		t.Fatalf("dev8 snapshots verify after corrupting %s: %v\n%s", filepath.Base(blobs[0]), err, out)
	}
}

package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// TestRestoreConfirmation: dev8 restore asks on a terminal before it
// replaces files, naming the environment, the snapshot and when it was
// taken; "n" restores nothing, "y" restores; without a terminal it needs
// --yes. Snapshots are named by id, the start of one, or latest.
func TestRestoreConfirmation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.login("ada@example.com")
	env := h.createRunning("box")
	ssh := func(cmd string) string {
		t.Helper()
		out, errOut, err := h.run("", "ssh", "box", "--", cmd)
		if err != nil {
			t.Fatalf("dev8 ssh box -- %s: %v\n%s", cmd, err, errOut)
		}
		return out
	}
	if _, _, err := h.run("", "restore", "box", "latest", "--yes"); err == nil || !strings.Contains(err.Error(), `"box" has no completed snapshot: take one with: dev8 snapshot box`) {
		t.Fatalf("restore latest without snapshots: %v", err)
	}
	ssh("echo v1 > a.txt")
	if _, errOut, err := h.run("", "snapshot", "box"); err != nil {
		t.Fatalf("dev8 snapshot: %v\n%s", err, errOut)
	}
	ssh("echo v2 > a.txt")
	if _, errOut, err := h.run("", "snapshot", "box"); err != nil {
		t.Fatalf("dev8 snapshot: %v\n%s", err, errOut)
	}
	list, err := c.Snapshots(h.ctx, env.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("snapshots: %d, %v", len(list), err)
	}
	newest, older := list[0], list[1]
	ssh("echo v3 > a.txt")

	// No terminal, no --yes: refused, naming --yes; nothing changes.
	_, _, err = h.run("y\n", "restore", "box", "latest")
	if err == nil || !strings.Contains(err.Error(), "nothing restored") || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("restore without a terminal or --yes: %v", err)
	}
	if got := ssh("cat a.txt"); got != "v3\n" {
		t.Fatalf("after the refused restore: %q", got)
	}

	// On a terminal: the question, then the answer.
	onTerminal := func(answer string, args ...string) (string, string, error) {
		t.Helper()
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		defer tty.Close()
		if _, err := ptmx.Write([]byte(answer + "\n")); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		err = h.runIO(h.ctx, tty, &out, &errOut, nil, append([]string{"restore"}, args...)...)
		return out.String(), errOut.String(), err
	}
	_, question, err := onTerminal("n", "box", "latest")
	if err == nil || !strings.Contains(err.Error(), "nothing restored") {
		t.Fatalf("restore answered n: %v", err)
	}
	for _, want := range []string{`Restore the workspace of "box" from snapshot ` + newest.ID + " (taken " + newest.CreatedAt.Local().Format("2006-01-02 15:04"), "Files there are replaced", "[y/N]"} {
		if !strings.Contains(question, want) {
			t.Errorf("the question %q does not say %q", question, want)
		}
	}
	if got := ssh("cat a.txt"); got != "v3\n" {
		t.Fatalf("after answering n: %q", got)
	}
	// The start of an id is enough.
	out, question, err := onTerminal("y", "box", strings.TrimPrefix(older.ID, "snap_")[:8], "--path", "a.txt")
	if err != nil || !strings.Contains(out, "Restored a.txt of \"box\" from "+older.ID) || !strings.Contains(question, "Restore a.txt of \"box\"") {
		t.Fatalf("restore answered y: %v\n%s%s", err, question, out)
	}
	if got := ssh("cat a.txt"); got != "v1\n" {
		t.Fatalf("after answering y: %q", got)
	}
	// A start that two snapshots share is ambiguous and names them.
	_, _, err = h.run("", "restore", "box", "snap_", "--yes")
	if err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), newest.ID) || !strings.Contains(err.Error(), older.ID) {
		t.Fatalf("restore of an ambiguous prefix: %v", err)
	}
}

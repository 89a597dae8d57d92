package cli

import (
	"strings"
	"testing"
)

// TestCreateFromSnapshot: dev8 create --from-snapshot / --from forks an
// environment from one of its snapshots (latest, or by id), and refuses
// references it cannot resolve before anything is created.
func TestCreateFromSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.login("ada@example.com")
	h.createRunning("src", "--template", "nodejs")
	if _, errOut, err := h.run("", "ssh", "src", "--", "echo forked > f.txt"); err != nil {
		t.Fatalf("write a file: %v\n%s", err, errOut)
	}
	out, errOut, err := h.run("", "snapshot", "src")
	if err != nil {
		t.Fatalf("dev8 snapshot: %v\n%s", err, errOut)
	}
	id := "snap_" + strings.TrimSuffix(strings.Fields(strings.SplitN(out, "Snapshot snap_", 2)[1])[0], ":")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from-snapshot", "latest"}, "--from-snapshot latest needs --from <environment>"},
		{[]string{"--from-snapshot", id[5:12]}, "give a snapshot id (snap_…), or name its environment with --from"},
		{[]string{"--from", "nope"}, `--from "nope"`},
		{[]string{"--from", "src", "--from-snapshot", "snap_zzz"}, `snapshot "snap_zzz" of "src" not found`},
		{[]string{"--from-snapshot", "snap_zzzzzzzzzzzzzzzzzzzzzz"}, "no snapshot snap_zzzzzzzzzzzzzzzzzzzzzz of yours"},
	} {
		_, _, err := h.run("", append([]string{"create", "bad"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dev8 create bad %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if _, err := c.FindEnvironment(h.ctx, "bad"); err == nil {
		t.Fatal("a refused fork created an environment")
	}

	// --from alone: the source's latest snapshot; a full id alone, too.
	for name, args := range map[string][]string{"copy": {"--from", "src"}, "copy2": {"--from-snapshot", id}} {
		out, errOut, err := h.run("", append([]string{"create", name}, args...)...)
		// How far the restore got before RUNNING was seen varies; that it
		// ended is said either way.
		if err != nil || !strings.Contains(out, "Starting from snapshot "+id) || !strings.Contains(out, "Its files were restored from snapshot ") {
			t.Fatalf("dev8 create %s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
		}
		// dev8 create returns once the files are there.
		if out, errOut, err := h.run("", "ssh", name, "--", "cat f.txt 2>&1"); err != nil || out != "forked\n" {
			t.Fatalf("%s: cat f.txt right after dev8 create: %q %q, %v", name, out, errOut, err)
		}
	}
	// --from takes the source's template; an id alone knows no source.
	for name, want := range map[string]string{"copy": "nodejs", "copy2": "base"} {
		if env, err := c.FindEnvironment(h.ctx, name); err != nil || env.TemplateName != want {
			t.Errorf("%s's template: %v, want %s", name, err, want)
		}
	}
}

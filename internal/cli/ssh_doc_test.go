package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sshExampleDocs are the pages that show how dev8 ssh runs a command.
var sshExampleDocs = []string{"../../README.md", "../web/docs/getting-started.md"}

// TestSSHDocumentedExample runs the documented `dev8 ssh web -- …` line as a
// user would, with a shell, and checks what the docs say it does: prints
// "hi" and exits with status 3.
func TestSSHDocumentedExample(t *testing.T) {
	t.Parallel()
	var example string
	for _, doc := range sshExampleDocs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		line := ""
		for l := range strings.Lines(string(data)) {
			if strings.HasPrefix(l, "dev8 ssh web -- ") {
				line, _, _ = strings.Cut(l, "#")
				line = strings.TrimSpace(line)
				break
			}
		}
		switch {
		case line == "":
			t.Fatalf("%s shows no `dev8 ssh web -- …` example", doc)
		case example == "":
			example = line
		case line != example:
			t.Fatalf("%s shows %q, %s %q", doc, line, sshExampleDocs[0], example)
		}
	}

	h := newHarness(t, nil)
	h.login("ada@example.com")
	h.createRunning("web")
	// "dev8" on PATH is this test binary, which runs as dev8 under
	// DEV8_TEST_CLI (see TestMain).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "dev8")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(h.ctx, "sh", "-c", example)
	cmd.Env = h.cliEnv("PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || string(out) != "hi\n" {
		t.Fatalf("%s: output %q, %v (stderr %q); want \"hi\\n\" and exit status 3", example, out, err, stderr.String())
	}

	// The arguments are joined with spaces, as OpenSSH joins them, and the
	// workspace's shell runs the result: sh -c gets "echo" as its script,
	// and "hi;" as $0. (Documented beside the example.)
	out2, _, err := h.run("", "ssh", "web", "--", "sh", "-c", "echo hi; exit 3")
	if exitCode(err) != 3 || out2 != "\n" {
		t.Fatalf("dev8 ssh web -- sh -c 'echo hi; exit 3': %q, %v; want an empty line and status 3, as ssh gives", out2, err)
	}
}

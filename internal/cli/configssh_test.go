package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"dev8.dev/dev8/sdk"
)

// needOpenSSH returns the ssh client's path; CI must have it.
func needOpenSSH(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must test with OpenSSH: apt-get install -y openssh-client")
		}
		t.Skip("no ssh on PATH (apt-get install -y openssh-client)")
	}
	return p
}

const userSSHConfig = `# my own settings
Host work
  HostName work.example.com
  User ada

Host *.internal
  ProxyJump bastion
  ServerAliveInterval 30`

func TestConfigSSH(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	h.createRunning("alpha")

	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte(userSSHConfig), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	out, _, err := h.run("", "config-ssh", "--ssh-config", path)
	if err != nil || !strings.Contains(out, "Updated "+path+": 1 host.") {
		t.Fatalf("config-ssh = %q, %v", out, err)
	}
	first := readFile(t, path)
	if !strings.HasPrefix(first, userSSHConfig+"\n\n"+sshBlockStart+"\n") || !strings.HasSuffix(first, sshBlockEnd+"\n") {
		t.Fatalf("config after the first run:\n%s", first)
	}
	exe, _ := os.Executable()
	for _, want := range []string{
		"\nHost dev8.alpha\n",
		"\n  HostName dev8.alpha\n",
		"\n  User " + localUser(h.ctx) + "\n",
		"\n  ProxyCommand " + shellQuote(exe) + " ssh --stdio alpha\n",
		"\n  StrictHostKeyChecking no\n",
		"\n  UserKnownHostsFile /dev/null\n",
		"\n  PreferredAuthentications none,publickey\n",
		"\n  Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com\n",
	} {
		if !strings.Contains(first, want) {
			t.Fatalf("config lacks %q:\n%s", want, first)
		}
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Fatalf("mode after config-ssh %v, want the file's own 0640", info.Mode().Perm())
	}

	// Idempotent.
	out, _, err = h.run("", "config-ssh", "--ssh-config", path)
	if err != nil || !strings.Contains(out, "is up to date (1 host)") || readFile(t, path) != first {
		t.Fatalf("second config-ssh = %q, %v; file changed: %v", out, err, readFile(t, path) != first)
	}

	// The user adds entries after the block; an environment appears: only
	// the block changes.
	after := "\nHost later\n  HostName later.example.com\n"
	if err := os.WriteFile(path, []byte(first+after), 0o640); err != nil {
		t.Fatal(err)
	}
	h.createRunning("beta")
	if _, _, err := h.run("", "config-ssh", "--ssh-config", path); err != nil {
		t.Fatal(err)
	}
	second := readFile(t, path)
	start, end := strings.Index(second, sshBlockStart), strings.Index(second, sshBlockEnd)+len(sshBlockEnd)+1
	if second[:start] != userSSHConfig+"\n\n" || second[end:] != after {
		t.Fatalf("outside the block changed:\n%s", second)
	}
	block := second[start:end]
	if !strings.Contains(block, "Host dev8.alpha\n") || !strings.Contains(block, "Host dev8.beta\n") || strings.Index(block, "dev8.alpha") > strings.Index(block, "dev8.beta") {
		t.Fatalf("block with two environments:\n%s", block)
	}

	// Dry run: printed, not written.
	if _, _, err := h.run("", "rm", "alpha"); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := h.run("", "config-ssh", "--ssh-config", path, "--dry-run")
	if err != nil || !strings.HasPrefix(out, sshBlockStart) || strings.Contains(out, "dev8.alpha") || !strings.Contains(out, "Host dev8.beta") ||
		!strings.Contains(errOut, "dry run") || readFile(t, path) != second {
		t.Fatalf("dry run = %q %q, %v", out, errOut, err)
	}
	if _, _, err := h.run("", "config-ssh", "--ssh-config", path); err != nil {
		t.Fatal(err)
	}
	third := readFile(t, path)
	if strings.Contains(third, "dev8.alpha") || !strings.Contains(third, "dev8.beta") || !strings.HasPrefix(third, userSSHConfig+"\n\n") || !strings.HasSuffix(third, after) {
		t.Fatalf("after rm:\n%s", third)
	}

	// A missing file in a missing directory: both created, private.
	fresh := filepath.Join(t.TempDir(), "home", ".ssh", "config")
	if _, _, err := h.run("", "config-ssh", "--ssh-config", fresh); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(fresh); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v %v", info, err)
	}
	if info, err := os.Stat(filepath.Dir(fresh)); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("new dir: %v %v", info, err)
	}
	if got := readFile(t, fresh); !strings.HasPrefix(got, sshBlockStart) {
		t.Fatalf("new file:\n%s", got)
	}

	// OpenSSH reads the block as meant.
	ssh := needOpenSSH(t)
	g, err := exec.CommandContext(h.ctx, ssh, "-G", "-F", path, "dev8.beta").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s", err, g)
	}
	for _, want := range []string{"\nuser " + localUser(h.ctx) + "\n", "\nproxycommand " + shellQuote(exe) + " ssh --stdio beta\n", "\nstricthostkeychecking false\n", "\nuserknownhostsfile /dev/null\n", "\npreferredauthentications none,publickey\n", "\nciphers " + sshCiphers + "\n"} {
		if !strings.Contains("\n"+string(g), want) {
			t.Fatalf("ssh -G lacks %q:\n%s", want, g)
		}
	}
	// The user's own hosts are untouched.
	g, _ = exec.CommandContext(h.ctx, ssh, "-G", "-F", path, "work").CombinedOutput()
	if !strings.Contains(string(g), "\nhostname work.example.com\n") || strings.Contains(string(g), "proxycommand") {
		t.Fatalf("ssh -G work:\n%s", g)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestReplaceSSHBlock(t *testing.T) {
	t.Parallel()
	block := sshBlockStart + "\nHost dev8.x\n" + sshBlockEnd + "\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", block},
		{"no newline at end", "Host a", "Host a\n\n" + block},
		{"append", "Host a\n", "Host a\n\n" + block},
		{"replace middle", "A\n" + sshBlockStart + "\nold\n" + sshBlockEnd + "\nB\n", "A\n" + block + "B\n"},
		{"replace at end without newline", "A\n" + sshBlockStart + "\nold\n" + sshBlockEnd, "A\n" + block},
		{"crlf and trailing blanks", "A\r\n" + sshBlockStart + "\r\nold\r\n" + sshBlockEnd + "  \r\nB\r\n", "A\r\n" + block + "B\r\n"},
		{"marker text inside a line is not a marker", "# not " + sshBlockStart + "\n", "# not " + sshBlockStart + "\n\n" + block},
	} {
		got, err := replaceSSHBlock(tc.in, block)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := replaceSSHBlock("A\n"+sshBlockStart+"\nold\n", block); err == nil {
		t.Error("a start marker without an end marker was accepted")
	}
	if _, err := replaceSSHBlock(block+block, block); err == nil {
		t.Error("two blocks were accepted")
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/usr/local/bin/dev8":   `"/usr/local/bin/dev8"`,
		"/opt/my apps/dev8":     `"/opt/my apps/dev8"`,
		`/x/$HOME/"q"/` + "`b`": `"/x/\$HOME/\"q\"/` + "\\`b\\`" + `"`,
		"my-env":                "my-env",
		"http://h:1":            `"http://h:1"`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if block := renderSSHBlock(nil, "/bin/dev8", "ada", nil); strings.Contains(block, "Host ") {
		t.Fatalf("block without environments has hosts:\n%s", block)
	}
	block := renderSSHBlock([]sdk.Environment{{Name: "x"}}, "/opt/100% real/dev8", "ada", []string{"--url", "https://h"})
	if want := "\n  ProxyCommand \"/opt/100%% real/dev8\" ssh --url \"https://h\" --stdio x\n"; !strings.Contains(block, want) {
		t.Fatalf("block lacks %q:\n%s", want, block)
	}
}

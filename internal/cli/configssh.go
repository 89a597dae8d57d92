package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/sdk"
)

// The markers around the block config-ssh owns in the SSH config file.
const (
	sshBlockStart = "# ------------START-DEV8-----------"
	sshBlockEnd   = "# ------------END-DEV8------------"
)

// sshHostPrefix names every host config-ssh writes: Host dev8.<name>.
const sshHostPrefix = "dev8."

// sshCiphers is the cipher order config-ssh asks OpenSSH for. The client's
// first choice that the server supports is used, and OpenSSH's own first
// choice is chacha20-poly1305, which the workspace's SSH server (Go's
// x/crypto) computes without assembly on amd64: it was a fifth of the tunnel's
// CPU per byte in docs/benchmarks.md. AES-GCM uses the CPU's AES
// instructions on both ends. chacha20-poly1305 stays last for clients built
// without AES-GCM.
const sshCiphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"

func newConfigSSHCommand() *cobra.Command {
	var (
		flags     clientFlags
		sshConfig string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "config-ssh",
		Short: "Add your environments to your SSH config as dev8.<name> hosts",
		Long: `dev8 config-ssh writes one "Host dev8.<name>" entry per environment into your
OpenSSH config, inside a block between START-DEV8 and END-DEV8 marker lines,
so that plain ssh, scp, sftp, rsync, git and VS Code Remote-SSH reach your
environments: each entry's ProxyCommand is "dev8 ssh --stdio <name>", which
tunnels through the Dev8 server with your token. No key and no host-key
prompt is needed. Each entry also asks for AES-GCM ciphers first (Ciphers
aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com):
the workspace's SSH server does AES in hardware, so copies (scp, rsync) take
less CPU than with OpenSSH's default chacha20-poly1305.

Run it again after creating or deleting environments: it rewrites only its
own block (appending it the first time) and leaves everything else in the
file as it was. The file is created (0600, in a 0700 directory) if missing,
keeps its mode otherwise, and is replaced atomically.`,
		Example: `  dev8 config-ssh && ssh dev8.my-env
  dev8 config-ssh --dry-run
  dev8 config-ssh --ssh-config ~/.ssh/dev8.conf   # then: Include dev8.conf`,
		Args: cobra.NoArgs,
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, srv, err := flags.client(ctx)
			if err != nil {
				return err
			}
			path, err := sshConfigPath(sshConfig)
			if err != nil {
				return err
			}
			envs, err := c.AllEnvironments(ctx, sdk.EnvironmentFilter{})
			if err != nil {
				return err
			}
			exe, err := dev8Executable()
			if err != nil {
				return err
			}
			// The ProxyCommand runs later, from ssh: it finds the server
			// and token in the login file, so --url is added only when this
			// run talks to another server than the stored one.
			var extra []string
			if !sameURL(srv.url, srv.stored.URL) {
				extra = append(extra, "--url", srv.url)
			}
			if srv.token != srv.stored.Token || !sameURL(srv.url, srv.stored.URL) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: the token does not come from dev8 login; ssh's ProxyCommand will only find it if %s is set where ssh runs\n", envToken)
			}
			block := renderSSHBlock(envs, exe, localUser(ctx), extra)

			out := cmd.OutOrStdout()
			if dryRun {
				fmt.Fprint(out, block)
				fmt.Fprintf(cmd.ErrOrStderr(), "dry run: %s was not changed\n", path)
				return nil
			}
			changed, err := updateSSHConfig(path, block)
			if err != nil {
				return err
			}
			hosts := len(sshBlockHosts(envs))
			if !changed {
				fmt.Fprintf(out, "%s is up to date (%d %s).\n", path, hosts, plural(hosts, "host", "hosts"))
				return nil
			}
			fmt.Fprintf(out, "Updated %s: %d %s.\n", path, hosts, plural(hosts, "host", "hosts"))
			if hosts > 0 {
				fmt.Fprintf(out, "Connect with: ssh %s%s\n", sshHostPrefix, sshBlockHosts(envs)[0].Name)
			}
			return nil
		}),
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&sshConfig, "ssh-config", "~/.ssh/config", "SSH config file to write")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the block instead of writing it")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sshConfigPath expands a leading ~ and makes the path absolute.
func sshConfigPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("--ssh-config %s: %w", p, err)
		}
		p = filepath.Join(home, p[1:])
	}
	return filepath.Abs(p)
}

// dev8Executable is the absolute path of this dev8, for ProxyCommand. The
// path it was run by is preferred to the resolved one when both name the
// same file, so a symlinked install survives upgrades.
func dev8Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the dev8 executable: %w", err)
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			a, err1 := os.Stat(abs)
			b, err2 := os.Stat(exe)
			if err1 == nil && err2 == nil && os.SameFile(a, b) {
				return abs, nil
			}
		}
	}
	return exe, nil
}

// sshBlockHosts are the environments that get a Host entry, by name.
func sshBlockHosts(envs []sdk.Environment) []sdk.Environment {
	var out []sdk.Environment
	seen := map[string]bool{}
	for _, e := range envs {
		if e.Status == sdk.StatusDeleting || seen[e.Name] {
			continue
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// renderSSHBlock is the whole managed block, markers included, ending in a
// newline.
func renderSSHBlock(envs []sdk.Environment, exe, user string, extraArgs []string) string {
	var b strings.Builder
	b.WriteString(sshBlockStart + "\n")
	b.WriteString("# Written by \"dev8 config-ssh\", which rewrites everything between these\n")
	b.WriteString("# markers: edits here are lost. Put your own settings outside the block.\n")
	proxy := []string{shellQuote(exe), "ssh"}
	for _, a := range extraArgs {
		proxy = append(proxy, shellQuote(a))
	}
	for _, e := range sshBlockHosts(envs) {
		host := sshHostPrefix + e.Name
		args := append(append([]string{}, proxy...), "--stdio", shellQuote(e.Name))
		fmt.Fprintf(&b, "\nHost %s\n", host)
		fmt.Fprintf(&b, "  HostName %s\n", host)
		fmt.Fprintf(&b, "  User %s\n", user)
		// ssh expands %-tokens in ProxyCommand; a literal % is %%.
		fmt.Fprintf(&b, "  ProxyCommand %s\n", strings.ReplaceAll(strings.Join(args, " "), "%", "%%"))
		// The tunnel is authenticated by the Dev8 server; the workspace's
		// host key is not worth pinning (it changes when the workspace is
		// recreated) and no key is needed to log in.
		b.WriteString("  StrictHostKeyChecking no\n")
		b.WriteString("  UserKnownHostsFile /dev/null\n")
		b.WriteString("  LogLevel ERROR\n")
		b.WriteString("  IdentitiesOnly yes\n")
		b.WriteString("  PreferredAuthentications none,publickey\n")
		b.WriteString("  Ciphers " + sshCiphers + "\n")
	}
	b.WriteString(sshBlockEnd + "\n")
	return b.String()
}

// shellQuote quotes s for the POSIX shell ssh runs ProxyCommand with.
// Paths are always double-quoted (they may hold spaces); other words only
// when they need it.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@", r))
	}) < 0
	if safe && !strings.Contains(s, "/") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(s) + `"`
}

// updateSSHConfig puts block into the file at path: in place of the old
// block, or appended. It reports whether the file changed.
func updateSSHConfig(path, block string) (bool, error) {
	// Write through a symlink (dotfile managers) rather than replacing it.
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	mode := fs.FileMode(0o600)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return false, fmt.Errorf("create %s: %w", dir, err)
			}
		}
	case err != nil:
		return false, fmt.Errorf("read %s: %w", path, err)
	default:
		info, err := os.Stat(path)
		if err != nil {
			return false, err
		}
		mode = info.Mode().Perm()
	}
	updated, err := replaceSSHBlock(string(old), block)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if updated == string(old) && old != nil {
		return false, nil
	}
	if err := writeFileAtomic(path, []byte(updated), mode); err != nil {
		return false, err
	}
	return true, nil
}

// replaceSSHBlock returns content with its managed block replaced by block,
// or with block appended (after a blank line) if it has none. Everything
// outside the block is kept byte for byte.
func replaceSSHBlock(content, block string) (string, error) {
	start := lineIndex(content, sshBlockStart, 0)
	if start < 0 {
		if content == "" {
			return block, nil
		}
		if !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		return content + "\n" + block, nil
	}
	end := lineIndex(content, sshBlockEnd, start)
	if end < 0 {
		return "", fmt.Errorf("has the %q line but no %q line after it; fix the file by hand", sshBlockStart, sshBlockEnd)
	}
	// The rest of the end marker's line is blank (lineIndex checked).
	if eol := strings.IndexByte(content[end:], '\n'); eol >= 0 {
		end += eol + 1
	} else {
		end = len(content)
	}
	if lineIndex(content[end:], sshBlockStart, 0) >= 0 {
		return "", fmt.Errorf("has more than one %q block; remove all but one by hand", sshBlockStart)
	}
	return content[:start] + block + content[end:], nil
}

// lineIndex is the index of the first line at or after from that is
// exactly line (trailing spaces and \r allowed), or -1.
func lineIndex(content, line string, from int) int {
	for i := from; i < len(content); {
		j := strings.Index(content[i:], line)
		if j < 0 {
			return -1
		}
		at := i + j
		rest := content[at+len(line):]
		if eol := strings.IndexByte(rest, '\n'); eol >= 0 {
			rest = rest[:eol]
		}
		if (at == 0 || content[at-1] == '\n') && strings.TrimRight(rest, " \t\r") == "" {
			return at
		}
		i = at + len(line)
	}
	return -1
}

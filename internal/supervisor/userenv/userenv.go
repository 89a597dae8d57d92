// Package userenv is the environment user processes start from (SSH
// sessions, web terminals, code-server): the supervisor's own minus its
// configuration and secrets, with the variables of the latest manifest (the
// user's secrets, git identity, GitHub token) added.
package userenv

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"dev8.dev/dev8/internal/agentapi"
)

// injectedEnvs holds the manifest's variables per environment id, for
// Build. A workspace runs one supervisor, so in production there is one
// entry; keying by id keeps supervisors that tests run side by side in one
// process apart.
var injectedEnvs sync.Map // environment id → []string ("K=V", sorted)

// SetInjected records what the latest manifest for envID delivered.
func SetInjected(envID string, env map[string]string) {
	kvs := make([]string, 0, len(env))
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "DEV8_") || strings.IndexByte(v, 0) >= 0 {
			continue
		}
		kvs = append(kvs, k+"="+v)
	}
	slices.Sort(kvs)
	injectedEnvs.Store(envID, kvs)
}

// Injected is what the last manifest for envID put into user
// environments.
func Injected(envID string) []string {
	v, ok := injectedEnvs.Load(envID)
	if !ok {
		return nil
	}
	return v.([]string)
}

// Build is the environment user processes start from: base minus the
// supervisor's DEV8_* configuration and secrets, with HOME, USER, LOGNAME,
// the environment id and the workspace directory filled in, and the
// variables of the environment's manifest (the user's secrets, git
// identity, GitHub token) where base does not set them.
func Build(base []string, home, envID, workspace string) []string {
	keep := map[string]bool{agentapi.EnvEnvironmentID: true, agentapi.EnvWorkspaceDir: true}
	env := make([]string, 0, len(base)+6)
	have := map[string]bool{}
	for _, kv := range base {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || (strings.HasPrefix(k, "DEV8_") && !keep[k]) {
			continue
		}
		env = append(env, kv)
		have[k] = true
	}
	set := func(k, v string) {
		if !have[k] && v != "" {
			env = append(env, k+"="+v)
			have[k] = true
		}
	}
	set("HOME", home)
	if u, err := user.Current(); err == nil {
		set("USER", u.Username)
		set("LOGNAME", u.Username)
		set("HOME", u.HomeDir)
	}
	set("PATH", "/usr/local/bin:/usr/bin:/bin")
	set(agentapi.EnvEnvironmentID, envID)
	set(agentapi.EnvWorkspaceDir, workspace)
	for _, kv := range Injected(envID) {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	return env
}

// DefaultShell is $SHELL from env if it is executable, else /bin/bash, else
// /bin/sh.
func DefaultShell(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "SHELL="); ok {
			if IsExecutable(v) {
				return v
			}
			break
		}
	}
	if IsExecutable("/bin/bash") {
		return "/bin/bash"
	}
	return "/bin/sh"
}

// IsExecutable says whether path is an absolute path to an executable file.
func IsExecutable(path string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

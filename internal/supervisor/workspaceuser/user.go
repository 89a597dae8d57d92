// Package workspaceuser makes the supervisor the workspace's user when a
// container starts it as root (see BecomeWorkspaceUser).
package workspaceuser

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/userenv"
)

// FallbackUID is the uid (and gid) a workspace runs as when its image does
// not know the workspace user's name: the uid of the dev8 user in Dev8's
// images.
const FallbackUID = 1000

// WorkspaceUser is who BecomeWorkspaceUser made this process.
type WorkspaceUser struct {
	Name     string
	UID, GID int
	Home     string
	Shell    string
	// Chowned lists the directories whose ownership was handed over.
	Chowned []string
}

// BecomeWorkspaceUser is the first thing the supervisor does in a container.
// When it runs as root and DEV8_WORKSPACE_USER names a user the image knows
// (a line of /etc/passwd, or a numeric uid[:gid]), it
//
//  1. hands the workspace directory and the home directory (DEV8_WORKSPACE_DIR
//     and HOME) to that user when their top directory is not theirs yet: a
//     new volume over a mount point the image did not create, or a volume
//     written by an earlier root supervisor; the whole tree then, once,
//  2. sets USER, LOGNAME and (if unset) HOME and SHELL from the passwd entry,
//  3. drops to that user's uid, gid and supplementary groups, for every
//     thread and for good (real, effective and saved ids), so the supervisor
//     and everything it starts (SSH sessions, SFTP, terminals, code-server,
//     forwarded ports) are that user and root is never reachable again (the
//     container also runs with no-new-privileges).
//
// A name the image does not know (an image without a dev8 user, such as a
// bare busybox) becomes FallbackUID:FallbackUID, the uid of Dev8's own
// images' user, without a passwd entry: a workspace never runs as root
// because its image lacks a user.
//
// It returns nil, nil when there is nothing to do: not root, variable
// unset, or a user that is root itself (an operator's explicit choice).
func BecomeWorkspaceUser() (*WorkspaceUser, error) {
	want := os.Getenv(agentapi.EnvWorkspaceUser)
	if want == "" || os.Geteuid() != 0 {
		return nil, nil
	}
	u, groups, err := lookupUser("/etc/passwd", "/etc/group", want)
	if err == nil && u == nil {
		u, groups, err = lookupUser("/etc/passwd", "/etc/group", strconv.Itoa(FallbackUID))
		if u != nil && u.Name == "" {
			// No passwd entry: the name asked for is what USER says.
			name, _, _ := strings.Cut(want, ":")
			if _, nerr := strconv.Atoi(name); nerr != nil {
				_ = os.Setenv("USER", name)
				_ = os.Setenv("LOGNAME", name)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("supervisor: workspace user %q: %w", want, err)
	}
	if u == nil || u.UID == 0 {
		return nil, nil
	}
	for _, dir := range []string{os.Getenv(agentapi.EnvWorkspaceDir), os.Getenv("HOME")} {
		if dir == "" {
			continue
		}
		changed, err := handOver(dir, u.UID, u.GID)
		if err != nil {
			return nil, fmt.Errorf("supervisor: give %s to %s: %w", dir, u.Name, err)
		}
		if changed {
			u.Chowned = append(u.Chowned, dir)
		}
	}
	if u.Name != "" {
		_ = os.Setenv("USER", u.Name)
		_ = os.Setenv("LOGNAME", u.Name)
	}
	if os.Getenv("HOME") == "" && u.Home != "" {
		_ = os.Setenv("HOME", u.Home)
	}
	if os.Getenv("SHELL") == "" && u.Shell != "" && userenv.IsExecutable(u.Shell) {
		_ = os.Setenv("SHELL", u.Shell)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return nil, fmt.Errorf("supervisor: setgroups: %w", err)
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return nil, fmt.Errorf("supervisor: setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return nil, fmt.Errorf("supervisor: setuid %d: %w", u.UID, err)
	}
	if os.Geteuid() != u.UID || os.Getuid() != u.UID {
		return nil, fmt.Errorf("supervisor: still uid %d after setuid %d", os.Geteuid(), u.UID)
	}
	return u, nil
}

// handOver gives dir (recursively) to uid:gid when dir itself is not
// owned by them; it reports whether it did. Symbolic links are changed, not
// followed.
func handOver(dir string, uid, gid int) (bool, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
		return false, nil
	}
	return true, filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// lookupUser finds name ("user[:group]", each a name or a number, as a
// Dockerfile's USER takes it) in passwd and its
// supplementary groups in group. A name that is not there is nil, nil; a
// numeric uid that is not there is used as is (gid as given, else the uid).
func lookupUser(passwd, group, name string) (*WorkspaceUser, []int, error) {
	idPart, gidPart, hasGID := strings.Cut(name, ":")
	numeric, nerr := strconv.Atoi(idPart)
	isNumeric := nerr == nil && numeric >= 0
	var u *WorkspaceUser
	err := eachLine(passwd, func(f []string) bool {
		if len(f) < 7 {
			return true
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return true
		}
		if f[0] == idPart || (isNumeric && uid == numeric) {
			u = &WorkspaceUser{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
			return false
		}
		return true
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if u == nil {
		if !isNumeric {
			return nil, nil, nil
		}
		u = &WorkspaceUser{UID: numeric, GID: numeric}
	}
	if hasGID {
		gid, err := lookupGroup(group, gidPart)
		if err != nil {
			return nil, nil, err
		}
		u.GID = gid
	}
	groups := []int{u.GID}
	if u.Name != "" {
		err = eachLine(group, func(f []string) bool {
			if len(f) < 4 {
				return true
			}
			gid, err := strconv.Atoi(f[2])
			if err != nil || gid == u.GID {
				return true
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == u.Name {
					groups = append(groups, gid)
					break
				}
			}
			return true
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
	}
	return u, groups, nil
}

// lookupGroup resolves a group given as a number or as a name in group.
func lookupGroup(group, name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	gid := -1
	err := eachLine(group, func(f []string) bool {
		if len(f) >= 3 && f[0] == name {
			if n, err := strconv.Atoi(f[2]); err == nil {
				gid = n
				return false
			}
		}
		return true
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if gid < 0 {
		return 0, fmt.Errorf("no group %q", name)
	}
	return gid, nil
}

// eachLine calls fn with the ':'-separated fields of each line of path until
// fn returns false.
func eachLine(path string, fn func([]string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !fn(strings.Split(line, ":")) {
			break
		}
	}
	return sc.Err()
}

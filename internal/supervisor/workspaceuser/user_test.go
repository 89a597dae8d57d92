package workspaceuser

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

func TestLookupUser(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte("# comment\nroot:x:0:0:root:/root:/bin/sh\nbroken:x:zz:1::/:/bin/sh\ndev8:x:1000:1000:Dev8:/home/dev8:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte("root:x:0:\ndev8:x:1000:\nusers:x:100:ada,dev8\ndocker:x:999:ada\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		want   *WorkspaceUser
		groups []int
	}{
		{"dev8", &WorkspaceUser{Name: "dev8", UID: 1000, GID: 1000, Home: "/home/dev8", Shell: "/bin/bash"}, []int{1000, 100}},
		{"1000", &WorkspaceUser{Name: "dev8", UID: 1000, GID: 1000, Home: "/home/dev8", Shell: "/bin/bash"}, []int{1000, 100}},
		{"dev8:50", &WorkspaceUser{Name: "dev8", UID: 1000, GID: 50, Home: "/home/dev8", Shell: "/bin/bash"}, []int{50, 100}},
		{"dev8:users", &WorkspaceUser{Name: "dev8", UID: 1000, GID: 100, Home: "/home/dev8", Shell: "/bin/bash"}, []int{100}},
		{"2000:3000", &WorkspaceUser{UID: 2000, GID: 3000}, []int{3000}},
		{"2000", &WorkspaceUser{UID: 2000, GID: 2000}, []int{2000}},
		{"nobody", nil, nil},
	} {
		u, groups, err := lookupUser(passwd, group, tc.name)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if (u == nil) != (tc.want == nil) || (u != nil && !reflect.DeepEqual(*u, *tc.want)) || !slices.Equal(groups, tc.groups) {
			t.Errorf("%s = %+v %v, want %+v %v", tc.name, u, groups, tc.want, tc.groups)
		}
	}
	if _, _, err := lookupUser(passwd, group, "dev8:nogroup"); err == nil {
		t.Error("dev8:nogroup: no error")
	}
	// An image without /etc/passwd: names are unknown, numbers work.
	if u, _, err := lookupUser(filepath.Join(dir, "none"), filepath.Join(dir, "none"), "dev8"); u != nil || err != nil {
		t.Errorf("no passwd: %+v %v", u, err)
	}
}

func TestHandOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "a", "link")); err != nil {
		t.Fatal(err)
	}
	// Owned by us already: nothing to do.
	changed, err := handOver(dir, os.Getuid(), os.Getgid())
	if err != nil || changed {
		t.Fatalf("own dir: %v %v", changed, err)
	}
	if changed, err := handOver(filepath.Join(dir, "missing"), 1, 1); err != nil || changed {
		t.Fatalf("missing dir: %v %v", changed, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("handing a tree to another user needs root")
	}
	changed, err = handOver(dir, 4242, 4343)
	if err != nil || !changed {
		t.Fatalf("handOver: %v %v", changed, err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "a", "b"), filepath.Join(dir, "a", "link")} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if uid, gid := ownerOf(fi); uid != 4242 || gid != 4343 {
			t.Errorf("%s: %d:%d", p, uid, gid)
		}
	}
	// The link's target was not followed.
	fi, err := os.Stat("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if uid, _ := ownerOf(fi); uid != 0 {
		t.Errorf("/etc/passwd now owned by %d", uid)
	}
}

func ownerOf(fi os.FileInfo) (uid, gid int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

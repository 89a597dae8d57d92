package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Node types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Node is one entry of a directory tree.
type Node struct {
	// Name is the entry's name; a name that is not valid UTF-8 (JSON
	// cannot carry it) is in NameRaw instead. Use FileName.
	Name    string `json:"name,omitempty"`
	NameRaw []byte `json:"name_raw,omitempty"`
	Type    string `json:"type"`
	// Mode is the permission bits plus setuid, setgid and sticky, as an
	// fs.FileMode.
	Mode  fs.FileMode `json:"mode"`
	Size  int64       `json:"size,omitempty"`
	MTime time.Time   `json:"mtime"`
	UID   uint32      `json:"uid"`
	GID   uint32      `json:"gid"`
	// Inode and CTime (Unix nanoseconds) detect unchanged files in the
	// next snapshot; they are not restored.
	Inode uint64 `json:"inode,omitempty"`
	CTime int64  `json:"ctime,omitempty"`
	// Target is a symlink's target, as stored in the link (in TargetRaw
	// if it is not valid UTF-8). Use LinkTarget.
	Target    string `json:"target,omitempty"`
	TargetRaw []byte `json:"target_raw,omitempty"`
	// Content is a file's chunks, in order.
	Content []ID `json:"content,omitempty"`
	// Subtree is a directory's tree blob.
	Subtree *ID `json:"subtree,omitempty"`
}

// FileName is the entry's name.
func (n *Node) FileName() string {
	if n.NameRaw != nil {
		return string(n.NameRaw)
	}
	return n.Name
}

// LinkTarget is a symlink's target.
func (n *Node) LinkTarget() string {
	if n.TargetRaw != nil {
		return string(n.TargetRaw)
	}
	return n.Target
}

func (n *Node) setName(s string) {
	if utf8.ValidString(s) {
		n.Name, n.NameRaw = s, nil
	} else {
		n.Name, n.NameRaw = "", []byte(s)
	}
}

func (n *Node) setTarget(s string) {
	if utf8.ValidString(s) {
		n.Target, n.TargetRaw = s, nil
	} else {
		n.Target, n.TargetRaw = "", []byte(s)
	}
}

// Tree is one directory's entries sorted by name, stored as a blob (JSON,
// compressed like chunks), so an unchanged directory has the same ID in
// every snapshot and is stored once.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

func (r *Repo) loadTree(ctx context.Context, id ID) (*Tree, error) {
	b, err := r.getBlob(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tree %s: does not decode: %v: %w", id.Short(), err, ErrCorrupt)
	}
	return &t, nil
}

func encodeTree(t *Tree) ([]byte, ID, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, ID{}, err
	}
	return b, Hash(b), nil
}

// permBits are the mode bits a Node keeps.
const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// ReadDir returns the entries of the directory dir (slash-separated,
// relative to the snapshot root; empty for the root) in a snapshot, sorted
// by name: what a file browser or a single-file restore needs.
func (r *Repo) ReadDir(ctx context.Context, snapshotID, dir string) ([]Node, error) {
	snap, err := r.LoadSnapshot(ctx, snapshotID)
	if err != nil {
		return nil, err
	}
	id := snap.Tree
	if p := strings.Trim(path.Clean("/"+dir), "/"); p != "" {
		n, err := r.lookup(ctx, snap.Tree, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if n.Type != TypeDir || n.Subtree == nil {
			return nil, fmt.Errorf("%s is not a directory: %w", p, ErrNotFound)
		}
		id = *n.Subtree
	}
	t, err := r.loadTree(ctx, id)
	if err != nil {
		return nil, err
	}
	return t.Nodes, nil
}

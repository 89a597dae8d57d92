package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The small supervisor takes what `dev8 supervisor` takes: the runtimes
// start both as [binary, "supervisor"].
// Not parallel: it empties DEV8_ENVIRONMENT_ID.
func TestArguments(t *testing.T) {
	t.Setenv("DEV8_ENVIRONMENT_ID", "")
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"supervisor", "--help"}, stdout: "Usage:\n  dev8-supervisor supervisor"},
		{args: []string{"supervisor", "-h"}, stdout: "DEV8_* environment variables"},
		{args: []string{"--help"}, stdout: "Usage:"},
		{args: []string{"supervisor", "extra"}, code: 1, stderr: `unexpected arguments ["extra"]`},
		{args: []string{"server"}, code: 1, stderr: `unexpected arguments ["server"]`},
		{args: []string{"supervisor", "--help", "x"}, code: 1, stderr: "unexpected arguments"},
		{args: []string{"install"}, code: 1, stderr: "want one PATH"},
		{args: []string{"supervisor", "install", "a", "b"}, code: 1, stderr: "want one PATH"},
		{args: []string{"install", "/nonexistent-dir/dev8"}, code: 1, stderr: "install:"},
		{args: []string{"seed-home", "/a"}, code: 1, stderr: "want SRC and DST"},
		{args: []string{"seed-home", "/nonexistent-a", "/nonexistent-b"}, code: 1, stderr: "seed home:"},
		// Without DEV8_ENVIRONMENT_ID supervisor.Main runs and refuses,
		// which shows these reach it.
		{args: []string{"supervisor"}, code: 1, stderr: "DEV8_ENVIRONMENT_ID is not set"},
		{args: nil, code: 1, stderr: "DEV8_ENVIRONMENT_ID is not set"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"dev8-supervisor"}, tc.args...), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout ~%q, stderr ~%q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestInstall: install copies this executable, whole and executable, over
// whatever is at the path.
func TestInstall(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "dev8")
	if err := os.WriteFile(dst, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"dev8-supervisor", "supervisor", "install", dst}, &stdout, &stderr); code != 0 {
		t.Fatalf("install: exit %d: %s", code, stderr.String())
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed %d bytes mode %v; want %d bytes mode 0755", len(got), fi.Mode().Perm(), len(want))
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

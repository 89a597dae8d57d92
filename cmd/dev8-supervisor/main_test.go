package main

import (
	"bytes"
	"context"
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

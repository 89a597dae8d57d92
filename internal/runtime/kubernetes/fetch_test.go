package kubernetes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
)

// TestFetchFailures: a workspace that cannot fetch its supervisor from
// the server does not run, and says why in words an operator can act on:
// an image without curl or wget, one without a shell (Start fails,
// permanently: no retry mends the image, and leaves no pod), and a
// download whose checksum is not the server's (refused, never run; the
// container may be seen running before, and then its exit is told of).
func TestFetchFailures(t *testing.T) {
	needCluster(t)
	t.Parallel()
	for _, tc := range []struct {
		name      string
		image     string
		agentURL  func() string
		want      []string
		permanent bool
	}{
		{"no curl or wget", dashImage, func() string { return testAgentURL },
			[]string{"the workspace image has neither curl nor wget to fetch the supervisor from the server: use --kubernetes-supervisor-from image"}, true},
		{"no shell", supervisorImage, func() string { return testAgentURL },
			[]string{"the workspace image has no /bin/sh to fetch the supervisor with", "use --kubernetes-supervisor-from image"}, true},
		{"tampered download", testImage, func() string { return tamperedAgentURL },
			[]string{"the supervisor downloaded from " + tamperedAgentURL, "does not match its checksum", "the server sent " + strings.Repeat("ab", 32)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := newTestRuntime(t, fromServer, func(c *Config) { c.AgentURL = tc.agentURL() })
			exits := make(chan string, 16)
			rt.NotifyExits(exits)
			spec := created(t, rt, func(s *runtime.Spec) { s.Image = tc.image })
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			_, err := rt.Start(ctx, spec.EnvironmentID)
			if err == nil {
				// The workspace container was seen running before its
				// bootstrap gave up (a download takes a moment): the
				// exit is told of, with its reason, as any other.
				// (The runtimes of the other cases share the
				// installation, and so its exits.)
				for id := ""; id != spec.EnvironmentID; {
					select {
					case id = <-exits:
					case <-ctx.Done():
						t.Fatal("started, and no exit was told of")
					}
				}
				inst, ierr := rt.Inspect(ctx, spec.EnvironmentID)
				if ierr != nil || inst.State == runtime.StateRunning || inst.ExitReason == "" {
					t.Fatalf("after the exit: %+v, %v", inst, ierr)
				}
				if tc.permanent {
					t.Errorf("started, though the image cannot fetch the supervisor: %s", inst.ExitReason)
				}
				err = errors.New(inst.ExitReason)
			} else {
				if runtime.IsPermanent(err) != tc.permanent {
					t.Errorf("permanent %v, want %v: %v", runtime.IsPermanent(err), tc.permanent, err)
				}
				if _, err := cli.CoreV1().Pods(testNamespace).Get(ctx, ObjectName(spec.EnvironmentID), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Errorf("a failed start left its pod: %v", err)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reason: %v\nwant ~%q", err, w)
				}
			}
		})
	}
}

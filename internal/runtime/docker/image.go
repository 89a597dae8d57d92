package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"dev8.dev/dev8/internal/runtime"
)

// ensureImage inspects img, pulling it first when it is not present unless
// NoPull. An image the registry says does not exist (or refuses to the
// engine) is a permanent error; a pull that failed for any other reason (the
// registry unreachable or failing, a timeout) is not, so the lifecycle tries
// the Create again later.
func (r *Runtime) ensureImage(ctx context.Context, img string) (image.InspectResponse, error) {
	info, err := r.cli.ImageInspect(ctx, img)
	if err == nil {
		return info, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return info, fmt.Errorf("inspect image %q: %w", img, err)
	}
	if r.cfg.BuiltHere[img] {
		return info, runtime.Permanent(errors.New(notBuiltReason(img)))
	}
	if r.cfg.NoPull {
		return info, runtime.Permanent(fmt.Errorf("image %q is not present (pulling is disabled)", img))
	}
	if perr := r.pulls.pull(ctx, img); perr != nil {
		if ctx.Err() != nil {
			return info, fmt.Errorf("pull image %q: %w", img, ctx.Err())
		}
		if pullFailurePermanent(img, perr) {
			return info, runtime.Permanent(fmt.Errorf("image %q is not present and could not be pulled (make images builds Dev8's images): %w", img, perr))
		}
		return info, fmt.Errorf("image %q is not present and pulling it failed, which may pass (the registry unreachable or failing): %w", img, perr)
	}
	info, err = r.cli.ImageInspect(ctx, img)
	if err != nil {
		return info, runtime.Permanent(fmt.Errorf("image %q is not present after a pull: %w", img, err))
	}
	return info, nil
}

// Words in a pull's error that mean the failure may pass: the registry (or
// the way to it) failed, not the image. They are looked for before
// permanentPullWords, since such a text may also hold one of those.
var transientPullWords = []string{
	"timeout", "timed out", "deadline exceeded",
	"connection refused", "connection reset", "no such host", "server misbehaving",
	"network is unreachable", "no route to host", "temporary failure", "try again",
	"unexpected eof", "broken pipe", "tls handshake",
	"toomanyrequests", "too many requests",
	"500 internal server error", "502 bad gateway", "503 service unavailable", "504 gateway timeout",
	"status: 500", "status: 502", "status: 503", "status: 504",
	"service unavailable", "bad gateway",
}

// Words in a pull's error that mean the image is not there for the engine,
// and asking again will not change that: no such repository, tag or
// manifest, no manifest for this platform, access denied (Docker Hub says
// that for a repository that does not exist), a malformed reference.
var permanentPullWords = []string{
	"manifest unknown", "name unknown", "not found", "does not exist",
	"pull access denied", "access to the resource is denied", "unauthorized", "authentication required",
	"no matching manifest", "invalid reference format",
}

// pullFailurePermanent says whether a failed pull of img failed for good.
// The engine reports most registry failures as text only (the pull's
// progress stream carries no error types), so besides the engine's error
// classes the text is read, with img itself cut out of it so that words in a
// name ("dev8/not-found-tool") do not count. What it does not recognise is
// taken as transient: a needless retry costs a little time, while a wrong
// "permanent" puts the environment in ERROR over a passing blip.
func pullFailurePermanent(img string, err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// The engine answers a pull the registry said "no such manifest or
	// repository" to (before any progress) with 404.
	if cerrdefs.IsNotFound(err) || cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsInvalidArgument(err) {
		return true
	}
	msg := strings.ToLower(strings.ReplaceAll(err.Error(), img, ""))
	for _, w := range transientPullWords {
		if strings.Contains(msg, w) {
			return false
		}
	}
	for _, w := range permanentPullWords {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

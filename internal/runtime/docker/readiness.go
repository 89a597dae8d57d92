package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"dev8.dev/dev8/internal/runtime"
)

var _ runtime.ImageChecker = (*Runtime)(nil)

// BuildImagesHint is what to run when an image built on this machine (one
// of Config.BuiltHere) is missing.
const BuildImagesHint = "make images (in Dev8's source tree; scripts/build-images.sh builds them with no registry)"

// imageRef is the reference Create runs for a spec's image.
func (r *Runtime) imageRef(img string) string {
	return runtime.ImageRef(img, r.cfg.DefaultImage, r.cfg.ImageRefs)
}

// ImageStatus implements runtime.ImageChecker: an image on the engine is
// ready; one being pulled is preparing; one built on this machine
// (Config.BuiltHere) that is not there is unavailable, with the command
// that builds it; any other is ready, since Create pulls it.
func (r *Runtime) ImageStatus(ctx context.Context, image string) runtime.ImageStatus {
	ref := r.imageRef(image)
	if ref == "" {
		return runtime.ImageStatus{State: runtime.Unavailable, Reason: "no image is configured for it"}
	}
	_, err := r.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return runtime.ImageStatus{State: runtime.Ready}
	case !cerrdefs.IsNotFound(err):
		return runtime.ImageStatus{State: runtime.Unavailable, Reason: fmt.Sprintf("the Docker engine did not answer about image %s: %v", ref, err)}
	case r.pulls.pulling(ref):
		return runtime.ImageStatus{State: runtime.Preparing, Reason: "pulling image " + ref}
	case r.cfg.BuiltHere[ref]:
		return runtime.ImageStatus{State: runtime.Unavailable, Reason: notBuiltReason(ref)}
	case r.cfg.NoPull:
		return runtime.ImageStatus{State: runtime.Unavailable, Reason: fmt.Sprintf("image %s is not on the Docker engine and pulling is disabled", ref)}
	}
	if perr := r.pulls.lastFailure(ref, failedPullMemory); perr != nil && pullFailurePermanent(ref, perr) {
		return runtime.ImageStatus{State: runtime.Unavailable, Reason: fmt.Sprintf("image %s could not be pulled: %v", ref, perr)}
	}
	return runtime.ImageStatus{State: runtime.Ready, Reason: fmt.Sprintf("image %s is pulled at the first create", ref)}
}

// Prefetch says, in the log, which of refs cannot run yet, and starts
// pulling in the background those the engine does not have and that are not
// built here (Config.BuiltHere), so that the first create from a template
// does not wait for its image: ImageStatus says "preparing" meanwhile, and a
// create joins the pull. The engine is asked once per image. It returns at
// once; Close ends the pulls.
func (r *Runtime) Prefetch(ctx context.Context, refs []string) {
	for _, ref := range refs {
		_, err := r.cli.ImageInspect(ctx, ref)
		switch {
		case err == nil:
		case !cerrdefs.IsNotFound(err):
			r.log.Warn("template image not ready on the Docker engine", "image", ref, "why", fmt.Sprintf("the engine did not answer about it: %v", err))
		case r.cfg.BuiltHere[ref]:
			r.log.Warn("template image not ready on the Docker engine", "image", ref, "why", notBuiltReason(ref))
		case r.cfg.NoPull:
			r.log.Warn("template image not ready on the Docker engine", "image", ref, "why", "it is not on the engine and pulling is disabled")
		default:
			r.log.Info("pulling a template image in the background", "image", ref)
			r.pulls.prefetch(ref)
		}
	}
}

// failedPullMemory is how long an image whose pull failed for good counts
// as unavailable: creates are refused meanwhile, and one after it tries
// the registry again (the image may have been pushed since).
const failedPullMemory = time.Minute

func notBuiltReason(ref string) string {
	return fmt.Sprintf("image %s has not been built on this Docker engine: run %s", ref, BuildImagesHint)
}

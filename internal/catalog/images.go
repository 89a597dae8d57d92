package catalog

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
)

// ParseAllowedImages parses a comma-separated list of image patterns (see
// ImageAllowed); empty means any image may be named.
func ParseAllowedImages(list string) ([]string, error) {
	var out []string
	var errs []error
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("image pattern %q: %w", p, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// ImageAllowed reports whether the image reference ref matches one of
// patterns. A pattern is a path.Match glob over the whole reference (`*`
// stays within one '/'-separated part, so registry.example/team/* allows
// registry.example/team/app:1 but not registry.example/team/x/app), or, when
// it ends in "/", a prefix: registry.example/ allows everything from that
// registry.
func ImageAllowed(patterns []string, ref string) bool {
	for _, p := range patterns {
		if strings.HasSuffix(p, "/") {
			if strings.HasPrefix(ref, p) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(p, ref); ok {
			return true
		}
	}
	return false
}

// CheckImageRef checks that ref is an image reference by the distribution
// grammar Docker and registries use (github.com/distribution/reference):
// [registry[:port]/]path[:tag][@algorithm:digest], lower-case path, a
// well-formed digest. It is the one check for every image a person names
// (a create's base_image, --template-image): a URL, a bad digest or
// anything else that is not a reference is refused before anything uses it.
func CheckImageRef(ref string) error {
	if strings.TrimSpace(ref) != ref || ref == "" {
		return errors.New("an image reference has no spaces and is not empty")
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return err
	}
	return nil
}

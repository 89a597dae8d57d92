package api

import (
	"context"
	"fmt"
	"strings"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpapi"
)

// checkBaseImage applies the operator's allow-list (Config.AllowedImages) to
// the base_image of a create request: a template name, or the image a
// template names, always passes; any other reference must match a pattern.
func (a *API) checkBaseImage(ctx context.Context, ref string) error {
	if ref == "" || len(a.allowedImages) == 0 {
		return nil
	}
	templates, err := a.store.ListTemplates(ctx)
	if err != nil {
		return fmt.Errorf("load templates: %w", err)
	}
	for _, t := range templates {
		if ref == t.Name || ref == t.BaseImage {
			return nil
		}
	}
	if catalog.ImageAllowed(a.allowedImages, ref) {
		return nil
	}
	return httpapi.Validation(fmt.Sprintf("base_image: %q is not allowed on this server; it runs the templates' images and images matching %s (--allowed-images)",
		ref, strings.Join(a.allowedImages, ", ")))
}

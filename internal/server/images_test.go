package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

// TestAllowedImages: with --allowed-images set, base_image may be a
// template name, a template's image or a reference matching a pattern;
// anything else is a 400 that names the rule, and nothing is created.
func TestAllowedImages(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.AllowedImages = []string{"registry.example/team/*", "mirror.example/"}
		c.TemplateImages = map[string]string{"nodejs": "registry.example/dev8/nodejs:1"}
	})
	token, _ := ts.user("ada@example.com")
	ada := ts.client(token)
	for i, image := range []string{"nodejs", "dev8/python", "registry.example/dev8/nodejs:1", "registry.example/team/app:2", "mirror.example/any/depth/image:3"} {
		env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "ok-" + string(rune('a'+i)), BaseImage: image})
		ts.waitStatus(token, env.ID, sdk.StatusRunning)
	}
	for _, image := range []string{"evil.example/team/app:1", "registry.example/team/nested/app:1", "registry.example/dev8/nodejs:2"} {
		_, err := ada.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "refused", BaseImage: image})
		if !isAPIError(err, http.StatusBadRequest, sdk.CodeValidation) {
			t.Errorf("base_image %s: %v", image, err)
			continue
		}
		if d := err.(*sdk.Error).Details; !strings.Contains(d, image) || !strings.Contains(d, "registry.example/team/*") || !strings.Contains(d, "--allowed-images") {
			t.Errorf("base_image %s: %v", image, err)
		}
	}
	list, err := ada.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Environments) != 5 {
		t.Errorf("%d environments, want 5 (refused ones must not exist)", len(list.Environments))
	}
}

// TestTemplateImagesRejected: a --template-image for a template that does
// not exist stops the server at start.
func TestTemplateImagesRejected(t *testing.T) {
	t.Parallel()
	_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), TemplateImages: map[string]string{"haskell": "x/y:1"}})
	if err == nil || !strings.Contains(err.Error(), `no template "haskell"`) {
		t.Fatalf("New: %v", err)
	}
	if _, err := server.ParseTemplateImages([]string{"nodejs"}); err == nil {
		t.Error("ParseTemplateImages accepted a pair without '='")
	}
	if _, err := server.ParseTemplateImages([]string{"nodejs=Not An Image"}); err == nil {
		t.Error("ParseTemplateImages accepted a bad reference")
	}
	got, err := server.ParseTemplateImages([]string{"nodejs=registry.example/dev8/nodejs:1", " python = r.example:5000/py@sha256:" + strings.Repeat("a", 64)})
	if err != nil || got["nodejs"] != "registry.example/dev8/nodejs:1" || got["python"] != "r.example:5000/py@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("ParseTemplateImages = %v, %v", got, err)
	}
}

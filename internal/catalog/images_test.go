package catalog

import "testing"

func TestImageAllowed(t *testing.T) {
	t.Parallel()
	patterns, err := ParseAllowedImages(" registry.example/team/* ,mirror.example/,, exact/image:1")
	if err != nil || len(patterns) != 3 {
		t.Fatalf("ParseAllowedImages = %q, %v", patterns, err)
	}
	for ref, want := range map[string]bool{
		"registry.example/team/app":          true,
		"registry.example/team/app:1":        true,
		"registry.example/team/a/b:1":        false, // * stays within one part
		"registry.example/other/app:1":       false,
		"mirror.example/anything/at/all:tag": true,
		"mirror.example.evil/x:1":            false,
		"exact/image:1":                      true,
		"exact/image:2":                      false,
	} {
		if got := ImageAllowed(patterns, ref); got != want {
			t.Errorf("ImageAllowed(%s) = %v, want %v", ref, got, want)
		}
	}
	if _, err := ParseAllowedImages("registry.example/[team"); err == nil {
		t.Error("a malformed pattern was accepted")
	}
	if p, err := ParseAllowedImages(""); err != nil || p != nil {
		t.Errorf("empty list = %q, %v", p, err)
	}
}

// CheckImageRef is the distribution grammar: a URL or a bad digest is not
// a reference.
func TestCheckImageRef(t *testing.T) {
	t.Parallel()
	for ref, ok := range map[string]bool{
		"busybox": true, "dev8/nodejs:latest": true, "localhost:5000/x/y:z": true,
		"img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": true,
		"http://x/y": false, "img@sha256:abc": false, "": false, "IMG": false, "img ": false,
	} {
		if err := CheckImageRef(ref); (err == nil) != ok {
			t.Errorf("CheckImageRef(%q) = %v, want ok=%v", ref, err, ok)
		}
	}
}

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

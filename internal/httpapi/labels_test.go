package httpapi

import (
	"strings"
	"testing"
)

func TestCleanLabel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"  Ada\nLovelace\x1b[0m ": "AdaLovelace[0m",
		"\u202eevil\u202c":        "evil",
		"Zoë":                     "Zoë",
		strings.Repeat("é", 150):  strings.Repeat("é", 100),
		"bad\xffutf8":             "badutf8",
	} {
		if got := CleanLabel(in, 100); got != want {
			t.Errorf("CleanLabel(%q) = %q, want %q", in, got, want)
		}
		if err := CheckLabel("name", CleanLabel(in, 100), 100); err != nil {
			t.Errorf("CleanLabel(%q) does not pass checkLabel: %v", in, err)
		}
	}
}

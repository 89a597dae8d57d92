package httpapi

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Names people give things — their own name, API tokens, SSH keys, their
// git identity, a terminal's id — are shown back in pages, CLI tables, logs
// and the audit log. CheckLabel is the one rule they pass: valid UTF-8, at most so many
// characters, and nothing that is not text: control characters (a newline
// forges a log line, an escape sequence rewrites a terminal), line and
// paragraph separators, and the bidirectional controls that make text read
// otherwise than it is ("Trojan source"). Names that are identifiers
// (environments, secrets) have stricter patterns of their own.
func CheckLabel(field, v string, maxRunes int) error {
	switch {
	case !utf8.ValidString(v):
		return Validation(field + ": must be UTF-8")
	case utf8.RuneCountInString(v) > maxRunes:
		return Validation(fmt.Sprintf("%s: at most %d characters", field, maxRunes))
	case strings.ContainsFunc(v, notText):
		return Validation(field + ": must not contain control characters (such as newlines, tabs, escapes or direction overrides)")
	}
	return nil
}

// CleanLabel is v made to pass CheckLabel, for names that come from
// elsewhere (an OAuth provider's profile) and must not be refused: what is
// not text goes, and the rest is cut to maxRunes.
func CleanLabel(v string, maxRunes int) string {
	v = strings.ToValidUTF8(v, "")
	v = strings.TrimSpace(strings.Map(func(r rune) rune {
		if notText(r) {
			return -1
		}
		return r
	}, v))
	if utf8.RuneCountInString(v) > maxRunes {
		v = string([]rune(v)[:maxRunes])
	}
	return v
}

// notText: control characters (C0, DEL, C1), line and paragraph
// separators, the byte order mark, and the bidirectional formatting
// characters. Joiners (U+200C, U+200D) stay: scripts and emoji need them.
func notText(r rune) bool {
	switch {
	case unicode.IsControl(r), unicode.In(r, unicode.Zl, unicode.Zp):
		return true
	case r == 0x061C, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0xFEFF:
		return true
	}
	return false
}

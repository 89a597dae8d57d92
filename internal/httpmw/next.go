package httpmw

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNextLength bounds the path a sign-in returns to.
const MaxNextLength = 2048

// SafeNext is the one rule for where a sign-in may send the browser
// afterwards (the sign-in page's ?next=, OAuth's next): next itself if it
// is a path on this server, else fallback. The server applies it and hands
// pages the result; no page checks next itself, so no two checks can
// disagree.
//
// A path on this server begins with exactly one "/" and then never leaves:
//   - no "//" or "/\" at its start (browsers read both as another host),
//     and no backslash anywhere (browsers turn it into "/");
//   - no control character, white space or invisible formatting character
//     anywhere (a browser drops tabs and newlines inside a URL, so
//     "/\t/evil.example" becomes "//evil.example"), nor percent-encoded in
//     the path ("/%09/x"), where no page of ours has one;
//   - no scheme, host or user information, and valid UTF-8.
//
// Percent-encoded slashes and backslashes are left alone: a browser keeps
// "/%2F%2Fevil.example" as a path on this server.
func SafeNext(next, fallback string) string {
	if next == "" || len(next) > MaxNextLength || !utf8.ValidString(next) || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') || strings.ContainsFunc(next, unsafeInURL) {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") ||
		strings.ContainsFunc(u.Path, unsafeInURL) {
		return fallback
	}
	return next
}

// unsafeInURL: characters a URL must not carry where a browser could drop
// or reinterpret them.
func unsafeInURL(r rune) bool {
	return unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

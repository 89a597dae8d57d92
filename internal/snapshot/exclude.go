package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// DefaultExcludes is what a snapshot leaves out unless Options.Excludes says
// otherwise: dependency trees and caches that a build recreates.
//
// A pattern ending in "/" matches directories only. A pattern without any
// other "/" is matched (path.Match syntax) against each entry's name at any
// depth; a pattern with a "/" is matched against the entry's slash-separated
// path relative to the snapshot root.
var DefaultExcludes = []string{
	"node_modules/",  // npm, yarn, pnpm
	".cache/",        // XDG and tool caches
	"__pycache__/",   // Python bytecode
	".pytest_cache/", // pytest
	".mypy_cache/",   // mypy
	".gradle/",       // Gradle caches
	"dist/",          // JS/Python build output
	"target/",        // Cargo, Maven build output
	".next/",         // Next.js build output
	".nuxt/",         // Nuxt build output
	".svelte-kit/",   // SvelteKit build output
	".turbo/",        // Turborepo cache
	".parcel-cache/", // Parcel cache
}

type excludePattern struct {
	pattern  string
	dirOnly  bool
	anchored bool
}

type excluder []excludePattern

func compileExcludes(patterns []string) (excluder, error) {
	var ex excluder
	for _, p := range patterns {
		orig := p
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
		if p == "" {
			return nil, fmt.Errorf("snapshot: empty exclude pattern %q", orig)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("snapshot: exclude pattern %q: %w", orig, err)
		}
		ex = append(ex, excludePattern{pattern: p, dirOnly: dirOnly, anchored: strings.Contains(p, "/") || strings.HasPrefix(orig, "/")})
	}
	return ex, nil
}

// match reports whether the entry at rel (slash-separated, relative to the
// root) is excluded.
func (ex excluder) match(rel string, isDir bool) bool {
	for _, p := range ex {
		if p.dirOnly && !isDir {
			continue
		}
		subject := path.Base(rel)
		if p.anchored {
			subject = rel
		}
		if ok, _ := path.Match(p.pattern, subject); ok {
			return true
		}
	}
	return false
}

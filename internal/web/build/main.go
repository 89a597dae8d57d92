// Command build bundles the dashboard's browser packages (installed by npm
// into internal/web/frontend/node_modules) into internal/web/static/dist,
// which the dev8 binary embeds. `make assets` runs it (after `npm ci`);
// `make run`, `make build` and `make test` run `make assets`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/evanw/esbuild/pkg/api"
)

func main() {
	dir := flag.String("dir", "internal/web", "the web package's directory")
	flag.Parse()
	frontend := filepath.Join(*dir, "frontend")
	if _, err := os.Stat(filepath.Join(frontend, "node_modules")); err != nil {
		fmt.Fprintf(os.Stderr, "build: %s/node_modules is missing: run `npm ci --prefix %s` (make assets does)\n", frontend, frontend)
		os.Exit(1)
	}
	out := filepath.Join(*dir, "static", "dist")
	result := api.Build(api.BuildOptions{
		EntryPoints:       []string{filepath.Join(frontend, "terminal.js")},
		Bundle:            true,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Format:            api.FormatESModule,
		Target:            api.ES2020,
		Outdir:            out,
		Write:             true,
		LogLevel:          api.LogLevelWarning,
		Sourcemap:         api.SourceMapNone,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsLinked,
	})
	if len(result.Errors) > 0 {
		os.Exit(1)
	}
	cwd, _ := os.Getwd()
	for _, f := range result.OutputFiles {
		rel, err := filepath.Rel(cwd, f.Path)
		if err != nil {
			rel = f.Path
		}
		fmt.Printf("build: %s (%d KiB)\n", rel, (len(f.Contents)+1023)/1024)
	}
}

//go:build dev8_embed_supervisor

package supervisorbin

import _ "embed"

// binary is cmd/dev8-supervisor, built by `make build` into this directory
// (git ignores it) before dev8 is built with -tags dev8_embed_supervisor.
//
//go:embed dev8-supervisor
var binary []byte

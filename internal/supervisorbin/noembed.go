//go:build !dev8_embed_supervisor

package supervisorbin

// binary is nil without the dev8_embed_supervisor tag: dev8 then runs
// `dev8 supervisor` itself.
var binary []byte

package clidoc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"dev8.dev/dev8/internal/cli"
)

// The markers around the generated table of dev8 server's options in the
// configuration reference and the README; the prose around them is written
// by hand.
const (
	optionsStart = "<!-- dev8 server options: generated from internal/cli/server.go by go run ./internal/web/genconfig; do not edit -->"
	optionsEnd   = "<!-- end of dev8 server options -->"
)

// Where a table is read: the docs site links to /docs/<page>#<anchor>; the
// README holds those sections itself, so its links are #<anchor>.
const (
	ForDocs = iota
	ForREADME
)

var docsLink = regexp.MustCompile(`\]\(/docs/[a-z-]+#`)

// OptionsTable is the Markdown table of dev8 server's options: flag,
// variable, default and meaning, one row each, in the table's order.
func OptionsTable(opts []cli.ServerOption, where int) string {
	var b strings.Builder
	b.WriteString("| flag | variable | default | |\n|---|---|---|---|\n")
	for _, o := range opts {
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", o.Flag, o.Env, cell(o.Default), cell(o.Help))
	}
	out := b.String()
	if where == ForREADME {
		out = docsLink.ReplaceAllString(out, "](#")
	}
	return out
}

// cell makes Markdown (with `code` spans) safe in a table cell: a pipe
// would end the cell, and outside code a < would start HTML and a * an
// emphasis.
func cell(md string) string {
	var b strings.Builder
	inCode := false
	for _, r := range md {
		switch {
		case r == '`':
			inCode = !inCode
			b.WriteRune(r)
		case r == '|':
			b.WriteString(`\|`)
		case !inCode && r == '<':
			b.WriteString("&lt;")
		case !inCode && r == '*':
			b.WriteString(`\*`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SpliceOptions replaces what stands between the markers in doc with table.
func SpliceOptions(doc, table string) (string, error) {
	start := strings.Index(doc, optionsStart)
	end := strings.Index(doc, optionsEnd)
	if start < 0 || end < start {
		return "", errors.New("no generated options table: the markers " + optionsStart + " and " + optionsEnd + " are missing")
	}
	return doc[:start] + optionsStart + "\n\n" + table + "\n" + doc[end:], nil
}

package api

import "bytes"

// OpenAPIDocument returns a copy of the OpenAPI document the API serves at
// /api/v1/openapi.json (the dashboard's docs render it as HTML).
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

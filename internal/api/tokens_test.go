package api

import (
	"testing"

	"dev8.dev/dev8/internal/auth"
)

// TestOpenAPITokenAndAuditBounds keeps the document's limits for the token
// and audit routes in step with the code.
func TestOpenAPITokenAndAuditBounds(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	req := doc.Components.Schemas["CreateTokenRequest"].Value
	name := req.Properties["name"].Value
	if name.MinLength != 1 || name.MaxLength == nil || *name.MaxLength != maxTokenNameLength {
		t.Errorf("CreateTokenRequest.name length %d..%v, want 1..%d", name.MinLength, deref(name.MaxLength), maxTokenNameLength)
	}
	days := req.Properties["expires_in_days"].Value
	if days.Min == nil || *days.Min != 1 || days.Max == nil || *days.Max != float64(auth.DefaultTokenMaxLifetime/day) {
		t.Errorf("CreateTokenRequest.expires_in_days %v..%v, want 1..%d", deref(days.Min), deref(days.Max), auth.DefaultTokenMaxLifetime/day)
	}
	list := documentedOperations(doc)["GET /api/v1/audit"]
	if list == nil {
		t.Fatal("GET /api/v1/audit is not documented")
	}
	limit := list.Parameters.GetByInAndName("query", "limit").Schema.Value
	if *limit.Min != 1 || *limit.Max != maxAuditLimit || limit.Default != float64(defaultAuditLimit) {
		t.Errorf("audit limit %v..%v default %v, want 1..%d default %d", *limit.Min, *limit.Max, limit.Default, maxAuditLimit, defaultAuditLimit)
	}
	for _, p := range []string{"actor", "action", "object_type", "object_id", "since", "until", "offset"} {
		if list.Parameters.GetByInAndName("query", p) == nil {
			t.Errorf("GET /api/v1/audit: no %s parameter", p)
		}
	}
}

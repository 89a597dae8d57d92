package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

type instanceTypeResponse struct {
	InstanceType sdk.InstanceType `json:"instance_type"`
}

type instanceTypeList struct {
	InstanceTypes []sdk.InstanceType `json:"instance_types"`
}

func (f *hardenedFixture) instanceTypeNames(token, query string) []string {
	f.t.Helper()
	rec := f.do(http.MethodGet, "/api/v1/instance-types"+query, reqOpts{token: token})
	wantStatus(f.t, rec, http.StatusOK, "")
	var names []string
	for _, it := range decodeBody[instanceTypeList](f.t, rec).InstanceTypes {
		names = append(names, it.Name)
	}
	return names
}

// TestAdminManagesInstanceTypes: admins add a GPU instance type (extended
// resources, node selector), edit it and retire it, each audited; every
// field is checked (a 400 naming the field) and nothing is stored on a
// refusal; members may only list the active types; environments keep what
// they were made with.
func TestAdminManagesInstanceTypes(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, nil)
	_, adminTok := f.user("root@example.com", "password-1")
	_, adaTok := f.user("ada@example.com", "password-1")
	post := func(tok, body string) *httptest.ResponseRecorder {
		return f.do(http.MethodPost, "/api/v1/instance-types", reqOpts{token: tok, body: body})
	}
	patch := func(tok, name, body string) *httptest.ResponseRecorder {
		return f.do(http.MethodPatch, "/api/v1/instance-types/"+name, reqOpts{token: tok, body: body})
	}
	const gpuBody = `{"name":"gpu","display_name":"GPU","description":"One NVIDIA GPU","cpu_cores":4,"memory_gb":16,"storage_gb":50,"sort_order":10,` +
		`"resources":{"nvidia.com/gpu":"1"},"node_selector":{"pool":"gpu"}}`

	// Members: neither create nor edit nor see retired types.
	wantStatus(t, post(adaTok, gpuBody), http.StatusForbidden, httpapi.CodeForbidden)
	wantStatus(t, patch(adaTok, "balanced", `{"is_active":false}`), http.StatusForbidden, httpapi.CodeForbidden)
	wantStatus(t, f.do(http.MethodGet, "/api/v1/instance-types?all=true", reqOpts{token: adaTok}), http.StatusForbidden, httpapi.CodeForbidden)
	wantStatus(t, f.do(http.MethodGet, "/api/v1/instance-types?all=maybe", reqOpts{token: adminTok}), http.StatusBadRequest, httpapi.CodeValidation)

	for body, field := range map[string]string{
		`{"name":"GPU","cpu_cores":4,"memory_gb":16,"storage_gb":50}`:                                                 "name:",
		`{"name":"custom","cpu_cores":4,"memory_gb":16,"storage_gb":50}`:                                              "name:",
		`{"name":"x","cpu_cores":17,"memory_gb":16,"storage_gb":50}`:                                                  "cpu_cores:",
		`{"name":"x","cpu_cores":4,"memory_gb":0,"storage_gb":50}`:                                                    "memory_gb:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":501}`:                                                  "storage_gb:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"sort_order":-1}`:                                   "sort_order:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"resources":{"gpu":"1"}}`:                           "resources:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"resources":{"nvidia.com/gpu":"0.5"}}`:              "resources:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"resources":{"nvidia.com/gpu":"many"}}`:             "resources:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"node_selector":{"pool":"gpu nodes"}}`:              "node_selector:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"node_selector":{"bad key!":"x"}}`:                  "node_selector:",
		`{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"display_name":"` + strings.Repeat("a", 101) + `"}`: "display_name:",
	} {
		rec := post(adminTok, body)
		wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
		if e := decodeError(t, rec); !strings.HasPrefix(e.Details, field) {
			t.Errorf("%s: details %q, want them to start with %q", body, e.Details, field)
		}
	}
	wantStatus(t, post(adminTok, `{"name":"x","cpu_cores":4,"memory_gb":16,"storage_gb":50,"gpus":1}`), http.StatusBadRequest, httpapi.CodeValidation)
	if names := f.instanceTypeNames(adminTok, "?all=true"); strings.Join(names, ",") != "lightweight,balanced,compute,memory" {
		t.Fatalf("refused creates stored types: %v", names)
	}

	rec := post(adminTok, gpuBody)
	wantStatus(t, rec, http.StatusCreated, "")
	gpu := decodeBody[instanceTypeResponse](t, rec).InstanceType
	if gpu.Name != "gpu" || gpu.Resources["nvidia.com/gpu"] != "1" || gpu.NodeSelector["pool"] != "gpu" || !gpu.IsActive || gpu.EstimatedCostPerHour <= 0 ||
		rec.Header().Get("Location") != "/api/v1/instance-types/gpu" {
		t.Fatalf("created: %+v (Location %q)", gpu, rec.Header().Get("Location"))
	}
	wantStatus(t, post(adminTok, gpuBody), http.StatusConflict, httpapi.CodeConflict)

	// Everyone lists it, with its placement; plain types show none.
	rec = f.do(http.MethodGet, "/api/v1/instance-types", reqOpts{token: adaTok})
	wantStatus(t, rec, http.StatusOK, "")
	list := decodeBody[instanceTypeList](t, rec).InstanceTypes
	if len(list) != 5 || list[4].Name != "gpu" || list[4].Resources["nvidia.com/gpu"] != "1" || list[0].Resources == nil || len(list[0].Resources) != 0 {
		t.Fatalf("member's list: %+v", list)
	}
	if !strings.Contains(rec.Body.String(), `"resources":{}`) {
		t.Errorf("a type without resources shows them as null: %s", rec.Body.String())
	}

	// This server's runtime (local) cannot give a GPU: refused, nothing made.
	rec = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adaTok, body: `{"name":"cuda","instance_type":"gpu"}`})
	wantStatus(t, rec, http.StatusConflict, httpapi.CodeRuntimeUnavailable)
	if e := decodeError(t, rec); !strings.Contains(e.Details, "nvidia.com/gpu=1") || !strings.Contains(e.Details, "the local runtime cannot give") {
		t.Errorf("GPU create on local: %+v", e)
	}
	if envs, _, err := f.db.ListEnvironments(t.Context(), store.EnvironmentFilter{}); err != nil || len(envs) != 0 {
		t.Fatalf("the refused create stored %d environments (%v)", len(envs), err)
	}

	// Edit: validated as a whole, fields kept unless sent, maps replaced.
	for body, field := range map[string]string{
		`{}`:                        "send at least one",
		`{"cpu_cores":0}`:           "cpu_cores:",
		`{"resources":{"a":"1"}}`:   "resources:",
		`{"node_selector":{"":""}}`: "node_selector:",
	} {
		rec := patch(adminTok, "gpu", body)
		wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
		if e := decodeError(t, rec); !strings.Contains(e.Details, field) {
			t.Errorf("patch %s: details %q, want %q", body, e.Details, field)
		}
	}
	wantStatus(t, patch(adminTok, "nope", `{"cpu_cores":2}`), http.StatusNotFound, httpapi.CodeNotFound)
	wantStatus(t, patch(adminTok, "gpu", `{"name":"other"}`), http.StatusBadRequest, httpapi.CodeValidation)
	rec = patch(adminTok, "gpu", `{"display_name":"Two GPUs","resources":{"nvidia.com/gpu":"2"},"node_selector":{}}`)
	wantStatus(t, rec, http.StatusOK, "")
	edited := decodeBody[instanceTypeResponse](t, rec).InstanceType
	if edited.DisplayName != "Two GPUs" || edited.Resources["nvidia.com/gpu"] != "2" || len(edited.NodeSelector) != 0 || edited.CPUCores != 4 || edited.Description != "One NVIDIA GPU" {
		t.Errorf("edited: %+v", edited)
	}

	// An environment made from a plain type shows no placement; one made
	// before an edit keeps its own (the store's copy: see lifecycle tests).
	rec = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adaTok, body: `{"name":"plain","instance_type":"compute"}`})
	wantStatus(t, rec, http.StatusCreated, "")
	if env := decodeBody[struct {
		Environment sdk.Environment `json:"environment"`
	}](t, rec).Environment; env.Resources == nil || len(env.Resources) != 0 || env.NodeSelector == nil || env.InstanceType != "compute" {
		t.Errorf("plain environment: %+v", env)
	}

	// Retire it: gone from the listing and from creates, still there for
	// admins, and back again.
	wantStatus(t, patch(adminTok, "gpu", `{"is_active":false}`), http.StatusOK, "")
	if names := f.instanceTypeNames(adaTok, ""); strings.Contains(strings.Join(names, ","), "gpu") {
		t.Errorf("a retired type is listed: %v", names)
	}
	if names := f.instanceTypeNames(adminTok, "?all=true"); !strings.Contains(strings.Join(names, ","), "gpu") {
		t.Errorf("a retired type is missing from all=true: %v", names)
	}
	rec = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adaTok, body: `{"name":"late","instance_type":"gpu"}`})
	wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
	wantStatus(t, patch(adminTok, "gpu", `{"is_active":true}`), http.StatusOK, "")

	events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{ObjectType: "instance_type", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
		if e.ObjectID != "gpu" || !e.Success {
			t.Errorf("audit event: %+v", e)
		}
	}
	if got := strings.Join(actions, ","); got != "instance_type.activate,instance_type.deactivate,instance_type.update,instance_type.create" {
		t.Errorf("audited: %s", got)
	}
}

// TestFractionalCPUThroughTheAPI: cpu_cores may be 0.25 to 16 in steps of
// 0.25 in a create and in an instance type; anything else is a 400 whose
// details name the field and the rule.
func TestFractionalCPUThroughTheAPI(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, nil)
	_, adminTok := f.user("root@example.com", "password-1") // the first user: an admin
	const rule = "from 0.25 to 16 in steps of 0.25"
	for i, bad := range []string{"0", "-1", "0.3", "0.1", "16.25", "1e400"} {
		rec := f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adminTok, body: fmt.Sprintf(`{"name":"bad%d","cpu_cores":%s}`, i, bad)})
		wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
		if e := decodeError(t, rec); bad != "1e400" && (!strings.HasPrefix(e.Details, "cpu_cores: ") || !strings.Contains(e.Details, rule)) {
			t.Errorf("cpu_cores %s: details %q; want the field and the rule", bad, e.Details)
		}
	}
	rec := f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adminTok, body: `{"name":"half","cpu_cores":0.5}`})
	wantStatus(t, rec, http.StatusCreated, "")
	env := decodeBody[struct{ Environment sdk.Environment }](t, rec).Environment
	if env.CPUCores != 0.5 || env.InstanceType != "custom" || !strings.Contains(rec.Body.String(), `"cpu_cores":0.5,`) {
		t.Errorf("created %v vCPU (%s): %s", env.CPUCores, env.InstanceType, rec.Body)
	}
	// Whole sizes are still written as integers, for clients that read them so.
	rec = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adminTok, body: `{"name":"two","cpu_cores":2}`})
	wantStatus(t, rec, http.StatusCreated, "")
	if !strings.Contains(rec.Body.String(), `"cpu_cores":2,`) {
		t.Errorf("a whole size is not written as an integer: %s", rec.Body)
	}

	post := func(body string) *httptest.ResponseRecorder {
		return f.do(http.MethodPost, "/api/v1/instance-types", reqOpts{token: adminTok, body: body})
	}
	rec = post(`{"name":"quarter","cpu_cores":0.25,"memory_gb":1,"storage_gb":10}`)
	wantStatus(t, rec, http.StatusCreated, "")
	if it := decodeBody[instanceTypeResponse](t, rec).InstanceType; it.CPUCores != 0.25 {
		t.Errorf("instance type of %v vCPU, want 0.25", it.CPUCores)
	}
	rec = post(`{"name":"odd","cpu_cores":0.3,"memory_gb":1,"storage_gb":10}`)
	wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
	if e := decodeError(t, rec); !strings.HasPrefix(e.Details, "cpu_cores: ") || !strings.Contains(e.Details, rule) {
		t.Errorf("instance type of 0.3 vCPU: %q", e.Details)
	}
	rec = f.do(http.MethodPatch, "/api/v1/instance-types/quarter", reqOpts{token: adminTok, body: `{"cpu_cores":1.5}`})
	wantStatus(t, rec, http.StatusOK, "")
	if it := decodeBody[instanceTypeResponse](t, rec).InstanceType; it.CPUCores != 1.5 {
		t.Errorf("instance type edited to %v vCPU, want 1.5", it.CPUCores)
	}
	rec = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: adminTok, body: `{"name":"typed","instance_type":"quarter"}`})
	wantStatus(t, rec, http.StatusCreated, "")
	if env := decodeBody[struct{ Environment sdk.Environment }](t, rec).Environment; env.CPUCores != 1.5 || env.InstanceType != "quarter" {
		t.Errorf("created from the type: %v vCPU, type %s", env.CPUCores, env.InstanceType)
	}
}

package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/usage"
	"dev8.dev/dev8/sdk"
)

// usageFixture is an API whose usage goes through a real Writer on a
// SQLite store, and one environment to report for.
type usageFixture struct {
	api *API
	w   *usage.Writer
	env store.Environment
	now time.Time
}

func newUsageFixture(t *testing.T) *usageFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := db.CreateUser(ctx, store.User{Email: "owner@example.com", Name: "o", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "ws", CPUCores: 2, EstimatedCostPerHour: 3.6})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := usage.NewWriter(usage.Config{Store: db, Logger: log, FlushInterval: time.Hour, Retention: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	t.Cleanup(func() { w.Close() })
	a := New(Config{Logger: log, Now: func() time.Time { return now }})
	a.usage = w
	return &usageFixture{api: a, w: w, env: env, now: now}
}

// call runs handler as if the middleware had loaded and authorised f.env.
func (f *usageFixture) call(handler http.HandlerFunc, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req = req.WithContext(httpmw.WithEnvironment(req.Context(), f.env))
	rec := httptest.NewRecorder()
	handler(rec, req)
	return rec
}

func usageSample(ts time.Time, cpu float64, mem int64) string {
	return fmt.Sprintf(`{"timestamp":%q,"cpu_usage_percent":%v,"memory_usage_mb":%d,"disk_usage_mb":2048,"network_in_mb":0.5,"network_out_mb":0.25}`,
		ts.Format(time.RFC3339Nano), cpu, mem)
}

func usageReport(samples ...string) string {
	return `{"samples":[` + strings.Join(samples, ",") + `]}`
}

func TestIngestAndListUsage(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	path := "/api/v1/environments/" + f.env.ID + "/usage"
	t0 := f.now.Add(-2 * time.Minute)
	// A sample older than a day is outside the default listing window.
	rec := f.call(f.api.ingestUsage, http.MethodPost, path, usageReport(usageSample(f.now.Add(-25*time.Hour), 1, 1)))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("ingest of an old sample: %d %s", rec.Code, rec.Body)
	}
	// Out of order within a report is fine.
	rec = f.call(f.api.ingestUsage, http.MethodPost, path, usageReport(
		usageSample(t0.Add(30*time.Second), 150.5, 900),
		usageSample(t0, 12.5, 800),
	))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", rec.Code, rec.Body)
	}
	if err := f.w.Close(); err != nil { // flushes
		t.Fatal(err)
	}

	rec = f.call(f.api.listUsage, http.MethodGet, path, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Usage []map[string]any `json:"usage"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Usage) != 2 {
		t.Fatalf("listed %d samples, want the 2 of the last day: %s", len(body.Usage), rec.Body)
	}
	first, second := body.Usage[0], body.Usage[1]
	want := map[string]any{
		"timestamp": t0.Format(time.RFC3339), "cpu_usage_percent": 12.5, "memory_usage_mb": 800.0, "disk_usage_mb": 2048.0,
		"network_in_mb": 0.5, "network_out_mb": 0.25, "cost_amount": 0.03, "billing_period": "2026-11",
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("first sample %s = %v, want %v", k, first[k], v)
		}
	}
	if len(first) != len(want) {
		t.Errorf("first sample has fields %v, want exactly %v", first, want)
	}
	if second["cpu_usage_percent"] != 150.5 || second["cost_amount"] != 0.03 {
		t.Errorf("second sample %v", second)
	}

	// since and limit.
	rec = f.call(f.api.listUsage, http.MethodGet, path+"?since="+f.now.Add(-48*time.Hour).Format(time.RFC3339)+"&limit=2", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("list with since: %d %s", rec.Code, rec.Body)
	}
	if len(body.Usage) != 2 || body.Usage[0]["memory_usage_mb"] != 1.0 {
		t.Errorf("since 48h ago, limit 2: %v; want the old sample first", body.Usage)
	}
}

func TestIngestUsageRejectsBadReports(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	path := "/api/v1/environments/" + f.env.ID + "/usage"
	ok := usageSample(f.now, 1, 1)
	many := make([]string, 1001)
	for i := range many {
		many[i] = usageSample(f.now.Add(-time.Duration(i)*time.Second), 1, 1)
	}
	at := `{"timestamp":"` + f.now.Format(time.RFC3339) + `",`
	for _, tc := range []struct {
		name, body, code string
	}{
		{"empty body", "", httpapi.CodeInvalidJSON},
		{"no samples field", `{}`, httpapi.CodeValidation},
		{"no samples", `{"samples":[]}`, httpapi.CodeValidation},
		{"too many samples", usageReport(many...), httpapi.CodeValidation},
		{"unknown field", `{"samples":[` + ok + `],"extra":1}`, httpapi.CodeValidation},
		{"missing timestamp", usageReport(`{"cpu_usage_percent":1}`), httpapi.CodeValidation},
		{"bad timestamp", usageReport(`{"timestamp":"yesterday"}`), httpapi.CodeInvalidJSON},
		{"future", usageReport(usageSample(f.now.Add(6*time.Minute), 1, 1)), httpapi.CodeValidation},
		{"older than retention", usageReport(usageSample(f.now.Add(-31*24*time.Hour), 1, 1)), httpapi.CodeValidation},
		{"negative cpu", usageReport(usageSample(f.now, -1, 1)), httpapi.CodeValidation},
		{"cpu beyond every core", usageReport(usageSample(f.now, 1e6, 1)), httpapi.CodeValidation},
		{"negative memory", usageReport(usageSample(f.now, 1, -1)), httpapi.CodeValidation},
		{"fractional memory", usageReport(at + `"memory_usage_mb":1.5}`), httpapi.CodeValidation},
		{"negative disk", usageReport(at + `"disk_usage_mb":-5}`), httpapi.CodeValidation},
		{"negative network", usageReport(at + `"network_out_mb":-0.1}`), httpapi.CodeValidation},
		{"one bad among good", usageReport(ok, usageSample(f.now, 1, -7)), httpapi.CodeValidation},
	} {
		rec := f.call(f.api.ingestUsage, http.MethodPost, path, tc.body)
		var e sdk.ErrorResponse
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusBadRequest || e.Code != tc.code || e.Error == "" {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, rec.Code, rec.Body, tc.code)
		}
	}
	if st := f.w.Stats(); st.Queued != 0 {
		t.Errorf("rejected reports queued %d rows", st.Queued)
	}
	// Five minutes ahead is tolerated skew; the machine's cores bound CPU.
	rec := f.call(f.api.ingestUsage, http.MethodPost, path, usageReport(usageSample(f.now.Add(4*time.Minute), 199, 1)))
	if rec.Code != http.StatusAccepted {
		t.Errorf("sample 4 minutes ahead at 199%% on a 2-core environment: %d %s", rec.Code, rec.Body)
	}
}

func TestListUsageRejectsBadQuery(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	path := "/api/v1/environments/" + f.env.ID + "/usage"
	for _, q := range []string{"?since=yesterday", "?since=2026-11-01", "?limit=0", "?limit=10001", "?limit=x"} {
		rec := f.call(f.api.listUsage, http.MethodGet, path+q, "")
		var e sdk.ErrorResponse
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusBadRequest || e.Code != httpapi.CodeValidation {
			t.Errorf("%s: %d %s, want 400 %s", q, rec.Code, rec.Body, httpapi.CodeValidation)
		}
	}
	rec := f.call(f.api.listUsage, http.MethodGet, path+"?limit=10000", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"usage":[]}` {
		t.Errorf("empty listing: %d %s", rec.Code, rec.Body)
	}
}

func TestUsageUnavailable(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	path := "/api/v1/environments/" + f.env.ID + "/usage"
	f.w.Close()
	rec := f.call(f.api.ingestUsage, http.MethodPost, path, usageReport(usageSample(f.now, 1, 1)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ingest after the writer closed: %d %s, want 503", rec.Code, rec.Body)
	}
	f.api.usage = nil
	for _, h := range []http.HandlerFunc{f.api.ingestUsage, f.api.listUsage} {
		if rec := f.call(h, http.MethodPost, path, usageReport(usageSample(f.now, 1, 1))); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("without a usage service: %d %s, want 503", rec.Code, rec.Body)
		}
	}
}

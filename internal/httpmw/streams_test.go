package httpmw

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// TestStreamCaps: a user's streams over the per-user cap, and anyone's over
// the total, are refused with 429 TOO_MANY_STREAMS before the handler runs;
// a closed stream frees its slot.
func TestStreamCaps(t *testing.T) {
	t.Parallel()
	s := NewStreams(StreamLimits{PerUser: 2, Total: 3}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	// Cleanups run last first: every stream's cancel, then this wait.
	t.Cleanup(wg.Wait)
	entered := make(chan struct{})
	h := s.Hold(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done() // a stream lasts until its client goes
	}))
	type stream struct{ close func() }
	// open starts a stream for user: it is admitted (the handler runs and
	// holds) or refused (the answer is returned).
	open := func(user string) (*stream, *httptest.ResponseRecorder) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/environments/events", nil)
		ctx, cancel := context.WithCancel(auth.WithUser(r.Context(), store.User{ID: user}))
		t.Cleanup(cancel)
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		finished := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(finished)
			h.ServeHTTP(w, r)
		}()
		select {
		case <-entered:
			return &stream{close: func() { cancel(); <-finished }}, nil
		case <-finished:
			cancel()
			return nil, w
		}
	}
	refused := func(user string) sdk.ErrorResponse {
		t.Helper()
		st, w := open(user)
		if st != nil {
			st.close()
			t.Fatalf("%s: a stream over the cap was admitted", user)
		}
		var e sdk.ErrorResponse
		if w.Code != http.StatusTooManyRequests || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code != httpapi.CodeTooManyStreams {
			t.Fatalf("%s over the cap: %d %s, want 429 %s", user, w.Code, w.Body, httpapi.CodeTooManyStreams)
		}
		return e
	}
	admitted := func(user string) *stream {
		t.Helper()
		st, w := open(user)
		if st == nil {
			t.Fatalf("%s: refused under the cap: %d %s", user, w.Code, w.Body)
		}
		return st
	}

	a1, a2 := admitted("ada"), admitted("ada")
	if e := refused("ada"); e.Details == "" {
		t.Fatal("the refusal does not say why")
	}
	b1 := admitted("bob")
	refused("carol") // the server's total
	if total, ada := s.Open("ada"); total != 3 || ada != 2 {
		t.Fatalf("open = %d, ada's = %d", total, ada)
	}
	a1.close()
	a3 := admitted("ada") // the slot a1 held
	refused("ada")
	for _, st := range []*stream{a2, a3, b1} {
		st.close()
	}
	if total, ada := s.Open("ada"); total != 0 || ada != 0 {
		t.Fatalf("after every stream closed: open = %d, ada's = %d", total, ada)
	}

	// Unauthenticated requests are not counted (the route refuses them);
	// HoldUpgrades counts only protocol switches.
	plain := s.HoldUpgrades(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for range 5 {
		r := httptest.NewRequest(http.MethodGet, "/w/e/ide/", nil)
		r = r.WithContext(auth.WithUser(r.Context(), store.User{ID: "ada"}))
		w := httptest.NewRecorder()
		plain.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			t.Fatalf("an ordinary IDE request: %d", w.Code)
		}
	}
}

func TestStreamCapsOff(t *testing.T) {
	t.Parallel()
	s := NewStreams(StreamLimits{PerUser: -1, Total: -1}, nil)
	for range 200 {
		if err := s.acquire("ada"); err != nil {
			t.Fatalf("no caps: %v", err)
		}
	}
	d := NewStreams(StreamLimits{}, nil)
	if d.perUser != DefaultStreamsPerUser || d.total != DefaultStreamsTotal {
		t.Fatalf("defaults: %d %d", d.perUser, d.total)
	}
}

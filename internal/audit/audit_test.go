package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

type fakeStore struct {
	mu     sync.Mutex
	events []store.AuditEvent
	ctxErr []error
	err    error
}

func (f *fakeStore) InsertAuditEvent(ctx context.Context, e store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	f.ctxErr = append(f.ctxErr, ctx.Err())
	return f.err
}

// TestRecord: an event is stored with every field, stamped with the
// recorder's clock, even when the caller's context has ended; a failed
// insert is logged, not returned; a nil recorder records nothing.
func TestRecord(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	st := &fakeStore{}
	var logs bytes.Buffer
	r := New(st, slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return at })

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // a client that hung up still leaves its trace
	r.Record(ctx, Event{Actor: User("u1"), Action: "token.create", Target: Target{Type: "token", ID: "t1"}, Success: true,
		Detail: map[string]any{"name": "ci"}, RequestID: "req-1", IP: "192.0.2.1"})
	r.Record(t.Context(), Event{Actor: System, Action: "environment.idle_stop", Target: Environment("e1")})

	if len(st.events) != 2 {
		t.Fatalf("%d events, want 2", len(st.events))
	}
	want := store.AuditEvent{CreatedAt: at, ActorKind: store.ActorUser, ActorUserID: "u1", Action: "token.create", ObjectType: "token",
		ObjectID: "t1", IP: "192.0.2.1", RequestID: "req-1", Success: true}
	got := st.events[0]
	if got.Detail["name"] != "ci" {
		t.Errorf("detail = %v", got.Detail)
	}
	got.Detail = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event = %+v, want %+v", got, want)
	}
	if st.ctxErr[0] != nil {
		t.Errorf("insert ran under an ended context: %v", st.ctxErr[0])
	}
	if e := st.events[1]; e.ActorKind != store.ActorSystem || e.ActorUserID != "" || e.ObjectType != "environment" || e.ObjectID != "e1" || e.Success {
		t.Errorf("system event = %+v", e)
	}

	st.err = errors.New("audit table unavailable")
	r.Record(t.Context(), Event{Actor: User(""), Action: "auth.login", Target: Target{Type: "user"}, RequestID: "req-2"})
	if !strings.Contains(logs.String(), "record audit event") || !strings.Contains(logs.String(), "req-2") {
		t.Errorf("failure not logged: %s", logs.String())
	}

	var none *Recorder
	none.Record(t.Context(), Event{Action: "x"}) // must not panic
}

package tunnel

import (
	"log/slog"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/testutil/wait"
)

type streamEvent struct {
	service string
	ok      bool
}

type recorder struct {
	mu        sync.Mutex
	connected int
	streams   []streamEvent
}

func (r *recorder) TunnelConnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected++
}

func (r *recorder) StreamOpened(service string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams = append(r.streams, streamEvent{service, err == nil})
}

// TestObserver: connections and streams are reported, and Sessions counts
// the supervisors connected.
func TestObserver(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	rec := &recorder{}
	reg.SetObserver(rec)
	if n := reg.Sessions(); n != 0 {
		t.Fatalf("Sessions = %d before any supervisor", n)
	}
	srv := testServer(t, reg, "tok")
	<-startAgent(t, ctx, srv.URL, "tok")

	conn, err := reg.Dial(ctx, "env_a", Header{Service: ServiceTCP, Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, conn, "ping")
	conn.Close()
	if _, err := reg.Dial(ctx, "env_a", Header{Service: ServiceSSH}); err == nil {
		t.Fatal("the echo handler served ssh")
	}
	if n := reg.Sessions(); n != 1 {
		t.Fatalf("Sessions = %d, want 1", n)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Serve reports the connection before Dial can use it.
	if rec.connected != 1 {
		t.Errorf("%d connections reported, want 1", rec.connected)
	}
	want := []streamEvent{{ServiceTCP, true}, {ServiceSSH, false}}
	if len(rec.streams) != len(want) || rec.streams[0] != want[0] || rec.streams[1] != want[1] {
		t.Errorf("streams %v, want %v", rec.streams, want)
	}
}

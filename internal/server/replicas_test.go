package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/sdk"
)

// startReplicas starts n servers on one PostgreSQL database with one
// secret key, each with its own data directory and address, as replicas
// behind a load balancer run.
func startReplicas(t *testing.T, n int, mutate func(*server.Config)) []*testServer {
	t.Helper()
	url := pgtest.NewDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	out := make([]*testServer, n)
	for i := range out {
		out[i] = startServer(t, url, func(c *server.Config) {
			c.SecretKey = hex.EncodeToString(key)
			if mutate != nil {
				mutate(c)
			}
		})
	}
	return out
}

// TestEventsAcrossReplicas: a dashboard's event stream on one replica
// shows the changes made through another.
func TestEventsAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs := startReplicas(t, 2, nil)
	maker, watcher := rs[0], rs[1]
	ada, _ := maker.user("ada@example.com")
	ctx, cancel := context.WithCancel(watcher.ctx)
	defer cancel()
	events, _ := watcher.openEvents(ctx, ada, "")

	env := maker.create(ada, sdk.CreateEnvironmentRequest{Name: "elsewhere"})
	for {
		ev, ok := <-events
		if !ok {
			t.Fatal("the stream ended before the other replica's create showed")
		}
		if ev.name == "environment" && strings.Contains(ev.data, `"id":"`+env.ID+`"`) {
			break
		}
		t.Fatalf("unexpected event %+v", ev)
	}
	if _, err := maker.client(ada).Delete(maker.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := <-events
		if !ok {
			t.Fatal("the stream ended before the other replica's delete showed")
		}
		if ev.name == "deleted" {
			if !strings.Contains(ev.data, env.ID) {
				t.Fatalf("deleted event %q", ev.data)
			}
			break
		}
	}
}

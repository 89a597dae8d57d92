package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/sdk"
)

type sseEvent struct {
	name string
	data string
}

// openEvents opens GET /api/v1/environments/events and returns its events.
func (ts *testServer) openEvents(ctx context.Context, token, query string) (<-chan sseEvent, int) {
	ts.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url+"/api/v1/environments/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		ts.t.Fatalf("Content-Type %q", ct)
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out, http.StatusOK
}

// TestEnvironmentEvents: the dashboard's live status stream carries the
// caller's environments' changes, and nobody else's.
func TestEnvironmentEvents(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	ada, _ := ts.user("ada@example.com")
	bob, _ := ts.user("bob@example.com")
	ctx, cancel := context.WithCancel(ts.ctx)
	defer cancel()

	if _, code := ts.openEvents(ctx, bob, "?all=true"); code != http.StatusForbidden {
		t.Fatalf("a member's all=true stream = %d, want 403", code)
	}
	adaEvents, _ := ts.openEvents(ctx, ada, "")
	bobEvents, _ := ts.openEvents(ctx, bob, "")

	env := ts.create(ada, sdk.CreateEnvironmentRequest{Name: "live"})
	var seen []string
	for status := ""; status != "RUNNING"; {
		ev, ok := <-adaEvents
		if !ok {
			t.Fatal("stream ended before RUNNING")
		}
		var got struct{ ID, Status string }
		if ev.name != "environment" || json.Unmarshal([]byte(ev.data), &got) != nil || got.ID != env.ID {
			t.Fatalf("unexpected event %+v", ev)
		}
		status = got.Status
		seen = append(seen, status)
	}
	t.Logf("statuses streamed: %v", seen)

	if _, err := ts.client(ada).Delete(ts.ctx, env.ID); err != nil {
		t.Fatalf("delete = %v", err)
	}
	for {
		ev, ok := <-adaEvents
		if !ok {
			t.Fatal("stream ended before the deletion")
		}
		if ev.name == "deleted" {
			if !strings.Contains(ev.data, env.ID) {
				t.Fatalf("deleted event %q", ev.data)
			}
			break
		}
	}
	// Bob's stream was open the whole time. His own change comes after
	// all of Ada's in every subscriber's order, so the first event he gets
	// must be his.
	mine := ts.create(bob, sdk.CreateEnvironmentRequest{Name: "mine"})
	ev, ok := <-bobEvents
	if !ok || ev.name != "environment" || !strings.Contains(ev.data, `"id":"`+mine.ID+`"`) {
		t.Fatalf("bob's first event = %+v, want his own environment %s", ev, mine.ID)
	}
}

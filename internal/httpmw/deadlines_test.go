package httpmw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// deadlineServer serves h on a real loopback listener with timeouts.
func deadlineServer(t *testing.T, timeouts RequestTimeouts, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	timeouts.Apply(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// slowBody sends a request whose body of n bytes trickles in a byte
// every gap, as a slow-loris client does, on conn; it stops at the first
// write that fails (the server hung up).
func slowBody(conn net.Conn, path string, n int, gap time.Duration) (sent int) {
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, n)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for sent < n {
		if _, err := conn.Write([]byte("x")); err != nil {
			return sent
		}
		sent++
		<-tick.C
	}
	return sent
}

// TestSlowBodyIsCut: a body sent a byte at a time is cut off once the read
// timeout passes, and the connection closed; it is not held for ever.
func TestSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	addr := deadlineServer(t, RequestTimeouts{Read: 300 * time.Millisecond, Request: 5 * time.Second},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
			if err != nil {
				w.WriteHeader(http.StatusRequestTimeout)
			}
		}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// 100 bytes at one per 50 ms would take 5 s.
	done := make(chan int, 1)
	go func() { done <- slowBody(conn, "/", 100, 50*time.Millisecond) }()
	err = <-readErr
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("reading the slow body: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the body was cut after %v, want about 300ms", d)
	}
	// The server hangs up: the client's reads end.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was not closed: %v", err)
	} // else EOF, or reset by the server's close

	if sent := <-done; sent >= 100 {
		t.Fatalf("the whole slow body was taken (%d bytes)", sent)
	}
}

// TestWholeRequestIsBounded: a handler's context ends when the request's
// time is up, for requests with a body and without.
func TestWholeRequestIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 400 * time.Millisecond
	ended := make(chan time.Duration, 2)
	addr := deadlineServer(t, RequestTimeouts{Read: 5 * time.Second, Request: limit}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			ended <- time.Since(start)
		case <-time.After(20 * limit):
			ended <- -1
		}
	}))
	for _, body := range []string{"", `{"a":1}`} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if d := <-ended; d < 0 || d > 10*limit {
			t.Fatalf("body %q: the handler's context did not end in time (%v)", body, d)
		}
	}
}

// TestLongLivedOutlastsTheBounds: a LongLived route (an event stream, a
// websocket) keeps its connection past both bounds, a slow body included;
// the next request on the same connection is bounded again.
func TestLongLivedOutlastsTheBounds(t *testing.T) {
	t.Parallel()
	const limit = 200 * time.Millisecond
	mux := http.NewServeMux()
	mux.Handle("/stream", LongLived(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
		case <-time.After(4 * limit): // past both bounds
			// Written after the write deadline would have passed.
			fmt.Fprintf(w, "still here %d", len(body))
		}
	})))
	readErr := make(chan error, 1)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	addr := deadlineServer(t, RequestTimeouts{Read: limit, Request: limit}, mux)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A body trickling in over three times the read bound.
	if sent := slowBody(conn, "/stream", 6, limit/2); sent != 6 {
		t.Fatalf("the long-lived route's body was cut after %d bytes", sent)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "still here 6" {
		t.Fatalf("long-lived answer: %d %q", resp.StatusCode, got)
	}
	// The same connection, an ordinary route: bounded again.
	go slowBody(conn, "/", 100, 50*time.Millisecond)
	var ne net.Error
	if err := <-readErr; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("an ordinary request after a long-lived one on the same connection: %v, want a timeout", err)
	}
}

// Without Apply (a handler tested on its own) LongLived does nothing.
func TestLongLivedWithoutTimeouts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := false
	LongLived(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true })).ServeHTTP(nil, (&http.Request{}).WithContext(ctx))
	if !ran {
		t.Fatal("LongLived did not call its handler")
	}
}

package tunnel

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/yamux"
)

// writeLog records the size of every Write that reaches the connection
// under a frameConn, i.e. every websocket message.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, len(p))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// TestFrameConnYamux: through a frameConn, yamux's data frames are one
// Write each (header and body), window updates stay their own 12 bytes,
// and the bytes arrive intact.
func TestFrameConnYamux(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	la, lb := &writeLog{Conn: a}, &writeLog{Conn: b}
	log := slog.New(slog.DiscardHandler)
	client, err := yamux.Client(newFrameConn(la), yamuxConfig(log))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := yamux.Server(newFrameConn(lb), yamuxConfig(log))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		s, err := server.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		defer s.Close()
		b, _ := io.ReadAll(s)
		got <- b
	}()
	s, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 100 << 10 {
		if _, err := s.Write(data[off:min(off+100<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("received %d bytes, not the %d sent", len(b), len(data))
	}

	la.mu.Lock()
	defer la.mu.Unlock()
	var payload, bare int
	for _, n := range la.writes {
		switch {
		case n == yamuxHeaderSize:
			bare++ // the stream's open and close (no body)
		case n > yamuxHeaderSize:
			payload += n - yamuxHeaderSize
		default:
			t.Errorf("a %d-byte write: a frame was split", n)
		}
	}
	if payload != len(data) {
		t.Errorf("data writes carried %d bytes, want %d (writes: %v)", payload, len(data), la.writes)
	}
	if bare > 4 {
		t.Errorf("%d header-only writes from the sender, want only the stream's open and close: %v", bare, la.writes)
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, n := range lb.writes {
		if n != yamuxHeaderSize {
			t.Errorf("the receiver wrote %d bytes at once; it only sends window updates and the close", n)
		}
	}
}

// TestFrameConnPassThrough: writes that are not a data header followed by
// its body go out unchanged and in order.
func TestFrameConnPassThrough(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	la := &writeLog{Conn: a}
	c := newFrameConn(la)
	hdr := func(typ byte, n uint32) []byte {
		h := make([]byte, yamuxHeaderSize)
		h[0], h[1] = 0, typ
		binary.BigEndian.PutUint32(h[8:], n)
		return h
	}
	writes := [][]byte{
		hdr(1, 5),                // a window update: no body
		hdr(0, 3), []byte("abc"), // a data frame: merged
		hdr(0, 4), []byte("xy"), // a body shorter than announced: both as written
		[]byte("rest"),
	}
	var want bytes.Buffer
	for _, w := range writes {
		want.Write(w)
	}
	got := make(chan []byte, 1)
	go func() {
		buf, _ := io.ReadAll(b)
		got <- buf
	}()
	for _, w := range writes {
		if n, err := c.Write(w); err != nil || n != len(w) {
			t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
		}
	}
	a.Close()
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("stream %q, want %q", g, want.Bytes())
	}
	if want := []int{12, 15, 12, 2, 4}; !slices.Equal(la.writes, want) {
		t.Fatalf("writes %v, want %v", la.writes, want)
	}
}

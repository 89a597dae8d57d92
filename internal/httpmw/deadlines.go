package httpmw

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Request time bounds. Bodies are at most 1 MiB (httpapi.MaxBodyBytes):
// 30 s asks for 35 KB/s at worst, a dial-up modem's worth, and no ordinary
// request takes the server long; what does (event streams, websockets, the
// IDE, a snapshot restore) is LongLived.
const (
	DefaultReadTimeout    = 30 * time.Second
	DefaultRequestTimeout = time.Minute
)

// RequestTimeouts bound an ordinary request, so a client that sends its
// body (or reads the answer) a byte at a time cannot hold a connection and
// a handler for ever. Zero fields take the defaults.
type RequestTimeouts struct {
	// Read: the headers and the whole body must have arrived this long
	// after the request began (the headers alone have
	// http.Server.ReadHeaderTimeout).
	Read time.Duration
	// Request: the answer must be written, and the handler's context ends,
	// this long after the headers arrived.
	Request time.Duration
}

func (t RequestTimeouts) orDefaults() RequestTimeouts {
	if t.Read <= 0 {
		t.Read = DefaultReadTimeout
	}
	if t.Request <= 0 {
		t.Request = DefaultRequestTimeout
	}
	return t
}

// Apply sets srv's timeouts and wraps its handler so that they hold for
// every request but those LongLived lifts them from: the read deadline ends
// the body's arrival (http.Server.ReadTimeout) and, once the body is in,
// moves to the end of the whole request, whose context then ends (net/http
// cancels it when the connection's read fails); the write deadline is
// http.Server.WriteTimeout. Set Handler first.
func (t RequestTimeouts) Apply(srv *http.Server) {
	t = t.orDefaults()
	srv.ReadTimeout = t.Read
	srv.WriteTimeout = t.Request
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := &deadlines{rc: http.NewResponseController(w), end: time.Now().Add(t.Request)}
		if r.Body == nil || r.Body == http.NoBody {
			d.bodyDone()
		} else {
			r.Body = &deadlineBody{ReadCloser: r.Body, d: d}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), deadlinesKey{}, d)))
	})
}

type deadlinesKey struct{}

// deadlines are one request's, for LongLived to lift.
type deadlines struct {
	rc  *http.ResponseController
	end time.Time

	mu     sync.Mutex
	lifted bool
}

// bodyDone: the body is in; the connection's reads (net/http's watch for
// the client going away) may now last until the request's end.
func (d *deadlines) bodyDone() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.lifted {
		_ = d.rc.SetReadDeadline(d.end)
	}
}

func (d *deadlines) lift() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lifted = true
	// Errors: a writer that cannot have deadlines (a test's recorder)
	// has none to lift.
	_ = d.rc.SetReadDeadline(time.Time{})
	_ = d.rc.SetWriteDeadline(time.Time{})
}

// deadlineBody tells its deadlines when the body has been read.
type deadlineBody struct {
	io.ReadCloser
	d    *deadlines
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// Only a body that arrived in full: after a timeout the
		// connection must stay cut.
		b.once.Do(b.d.bodyDone)
	}
	return n, err
}

// LongLived lifts RequestTimeouts from the requests of a route that lasts
// as long as the client wants: event streams, websockets (before the
// upgrade: a hijacked connection keeps its deadlines), the IDE's proxy, and
// operations as long as the data they work on (a snapshot restore). Use it
// after authentication, so that nobody unknown holds a connection open.
func LongLived(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, ok := r.Context().Value(deadlinesKey{}).(*deadlines); ok {
			d.lift()
		}
		next.ServeHTTP(w, r)
	})
}

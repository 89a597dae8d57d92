package streams

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/creack/pty"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/supervisor/sessionproc"
	"dev8.dev/dev8/internal/tunnel"
)

// Reconnecting web terminals (ServicePTY).
//
// A terminal is named by Header.Reconnect. The first stream with a name
// starts the shell (or Header.Command, run by the shell) in a PTY of
// Header.Width×Height; the terminal's output is sent raw on the stream and
// the last PTYScrollback bytes of it are kept. When the stream ends the
// terminal stays alive for PTYGrace; a stream with the same name within it
// gets the scrollback replayed (it may begin in the middle of an escape
// sequence or character), then live output, and its Width×Height, if set,
// resize the terminal. After PTYGrace with no client, the terminal is hung
// up (SIGHUP, then SIGKILL) and forgotten. When the shell exits, the rest of
// its output is sent and the stream is closed.
//
// One client at a time: a new stream for a terminal that has a client
// replaces it (the old stream is closed). Input is read only from the
// current client.

// Bounds of a client's output queue and of the last flush to a client that
// is being closed because its terminal ended.
const (
	maxClientPending = 256 << 10
	finalFlush       = 5 * time.Second
)

type ptyManager struct {
	s *Streams

	mu     sync.Mutex
	closed bool
	terms  map[string]*webTerm
}

func newPTYManager(s *Streams) *ptyManager {
	return &ptyManager{s: s, terms: map[string]*webTerm{}}
}

type webTerm struct {
	m      *ptyManager
	id     string
	proc   *sessionproc.Proc
	master *os.File
	done   chan struct{} // closed once the process is reaped and output drained

	mu     sync.Mutex
	ring   ring
	client *termClient
	dead   bool // exited, expired or killed: no more attaching
	grace  *time.Timer
	gen    int // bumped by every attach and detach, to tell stale timers
}

func (m *ptyManager) serve(ctx context.Context, h tunnel.Header, conn net.Conn) {
	if h.Reconnect == "" {
		refuse(conn, "a terminal needs a reconnect id")
		return
	}
	c := newTermClient(conn)
	var t *webTerm
	for {
		var err error
		t, err = m.get(ctx, h)
		if err != nil {
			refuse(conn, err.Error())
			return
		}
		if t.attach(c) {
			break
		}
		// It died between get and attach: start another.
	}
	if tunnel.WriteReply(conn, tunnel.Reply{OK: true}) != nil {
		t.detach(c)
		c.close()
		return
	}
	if h.Width > 0 && h.Height > 0 {
		_ = sessionproc.SetPTYSize(t.master, pty.Winsize{Cols: h.Width, Rows: h.Height})
	}
	go c.loop()

	dec := tunnel.PTYReader(conn)
	for {
		var in tunnel.PTYInput
		if dec.Decode(&in) != nil || !t.isCurrent(c) {
			break
		}
		if in.Data != "" {
			m.s.act.Touch(activity.ActivityPTY)
			if _, err := t.master.Write([]byte(in.Data)); err != nil {
				break
			}
		}
		if in.Width > 0 && in.Height > 0 {
			_ = sessionproc.SetPTYSize(t.master, pty.Winsize{Cols: in.Width, Rows: in.Height})
		}
	}
	t.detach(c)
	c.closeUnlessFinishing()
	<-c.done
}

// get returns the live terminal named h.Reconnect, starting it if needed.
func (m *ptyManager) get(ctx context.Context, h tunnel.Header) (*webTerm, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("the workspace is shutting down")
	}
	if t := m.terms[h.Reconnect]; t != nil && t.alive() {
		return t, nil
	}
	t, err := m.start(ctx, h)
	if err != nil {
		return nil, err
	}
	m.terms[h.Reconnect] = t
	return t, nil
}

func (m *ptyManager) start(ctx context.Context, h tunnel.Header) (*webTerm, error) {
	s := m.s
	var cmd *exec.Cmd
	if h.Command != "" {
		cmd = exec.Command(s.shell, "-c", h.Command)
	} else {
		cmd = exec.Command(s.shell)
	}
	cmd.Dir = s.cfg.WorkspaceDir
	cmd.Env = append(s.sessionEnv(), "SHELL="+s.shell, "TERM=xterm-256color")
	size := pty.Winsize{Cols: h.Width, Rows: h.Height}
	if size.Cols == 0 || size.Rows == 0 {
		size = pty.Winsize{Cols: 80, Rows: 24}
	}
	master, tty, err := sessionproc.OpenPTY(&size)
	if err != nil {
		return nil, err
	}
	if !s.hold() {
		_ = master.Close()
		_ = tty.Close()
		return nil, errors.New("the workspace is shutting down")
	}
	p, err := sessionproc.Start(cmd, tty)
	_ = tty.Close()
	if err != nil {
		_ = master.Close()
		s.wg.Done()
		return nil, err
	}
	t := &webTerm{
		m:      m,
		id:     h.Reconnect,
		proc:   p,
		master: master,
		done:   make(chan struct{}),
		ring:   ring{buf: make([]byte, s.cfg.PTYScrollback)},
	}
	// The terminal outlives its streams but not the supervisor.
	stop := context.AfterFunc(ctx, t.kill)
	go func() {
		defer s.wg.Done()
		defer stop()
		t.run()
	}()
	s.log.Info("terminal started", "id", h.Reconnect, "pid", p.Pid())
	return t, nil
}

// run copies the terminal's output until it ends, then reaps it.
func (t *webTerm) run() {
	sessionproc.Drain(writerFunc(t.output), t.master, t.proc.Exited())
	<-t.proc.Reaped()
	_ = t.master.Close()
	t.mu.Lock()
	t.dead = true
	c := t.client
	t.client = nil
	if t.grace != nil {
		t.grace.Stop()
	}
	t.mu.Unlock()
	if c != nil {
		c.finish()
	}
	t.m.mu.Lock()
	if t.m.terms[t.id] == t {
		delete(t.m.terms, t.id)
	}
	t.m.mu.Unlock()
	code, sig, _ := sessionproc.ExitStatus(t.proc.State())
	t.m.s.log.Info("terminal ended", "id", t.id, "exit", code, "signal", sig)
	close(t.done)
}

func (t *webTerm) output(b []byte) (int, error) {
	t.mu.Lock()
	t.ring.Write(b)
	c := t.client
	t.mu.Unlock()
	if c != nil {
		c.send(b)
	}
	return len(b), nil
}

func (t *webTerm) alive() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.dead
}

func (t *webTerm) isCurrent(c *termClient) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.client == c
}

// attach makes c the terminal's client, queueing the scrollback for it; the
// previous client is closed. False if the terminal is dead.
func (t *webTerm) attach(c *termClient) bool {
	t.mu.Lock()
	if t.dead {
		t.mu.Unlock()
		return false
	}
	old := t.client
	t.client = c
	c.buf = t.ring.Bytes()
	t.gen++
	if t.grace != nil {
		t.grace.Stop()
		t.grace = nil
	}
	t.mu.Unlock()
	if old != nil {
		old.close()
	}
	return true
}

// detach forgets c if it is still the client and starts the grace period.
func (t *webTerm) detach(c *termClient) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client != c {
		return
	}
	t.client = nil
	t.gen++
	if !t.dead {
		gen := t.gen
		t.grace = time.AfterFunc(t.m.s.cfg.PTYGrace, func() { t.expire(gen) })
	}
}

// expire hangs the terminal up if nobody attached since the detach that
// started the grace period gen.
func (t *webTerm) expire(gen int) {
	t.mu.Lock()
	if t.dead || t.client != nil || t.gen != gen {
		t.mu.Unlock()
		return
	}
	t.dead = true
	t.mu.Unlock()
	t.m.s.log.Info("terminal abandoned; hanging up", "id", t.id)
	t.proc.Hangup(hangupGrace)
}

// kill hangs the terminal up now.
func (t *webTerm) kill() {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
	t.proc.Hangup(hangupGrace)
}

func (m *ptyManager) closeAll() {
	m.mu.Lock()
	m.closed = true
	terms := make([]*webTerm, 0, len(m.terms))
	for _, t := range m.terms {
		terms = append(terms, t)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.kill()
			<-t.done
		}()
	}
	wg.Wait()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// termClient queues a terminal's output for one stream and writes it from
// its own goroutine (loop), so that a slow client slows the terminal down
// (its queue is bounded) without holding any lock, and replacing it never
// waits for it.
type termClient struct {
	conn net.Conn
	done chan struct{} // closed when loop returns

	mu        sync.Mutex
	cond      sync.Cond
	buf       []byte
	finishing bool // flush what is queued, then close
	closed    bool
}

func newTermClient(conn net.Conn) *termClient {
	c := &termClient{conn: conn, done: make(chan struct{})}
	c.cond.L = &c.mu
	return c
}

func (c *termClient) send(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && !c.finishing && len(c.buf) >= maxClientPending {
		c.cond.Wait()
	}
	if c.closed || c.finishing {
		return
	}
	c.buf = append(c.buf, b...)
	c.cond.Broadcast()
}

func (c *termClient) finish() {
	c.mu.Lock()
	c.finishing = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *termClient) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.conn.Close()
}

func (c *termClient) closeUnlessFinishing() {
	c.mu.Lock()
	fin := c.finishing
	c.mu.Unlock()
	if !fin {
		c.close()
	}
}

func (c *termClient) loop() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.buf) == 0 && !c.closed && !c.finishing {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if len(c.buf) == 0 { // finishing and flushed
			c.closed = true
			c.mu.Unlock()
			_ = c.conn.Close()
			return
		}
		b := c.buf
		c.buf = nil
		if c.finishing {
			_ = c.conn.SetWriteDeadline(time.Now().Add(finalFlush))
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if _, err := c.conn.Write(b); err != nil {
			c.close()
			return
		}
	}
}

// ring keeps the last len(buf) bytes written to it.
type ring struct {
	buf  []byte
	w    int
	full bool
}

func (r *ring) Write(p []byte) {
	size := len(r.buf)
	if size == 0 {
		return
	}
	if len(p) >= size {
		copy(r.buf, p[len(p)-size:])
		r.w, r.full = 0, true
		return
	}
	n := copy(r.buf[r.w:], p)
	if n < len(p) {
		copy(r.buf, p[n:])
	}
	if r.w+len(p) >= size {
		r.full = true
	}
	r.w = (r.w + len(p)) % size
}

// Bytes returns a copy of what the ring holds, oldest first.
func (r *ring) Bytes() []byte {
	if !r.full {
		return append([]byte(nil), r.buf[:r.w]...)
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.w:]...)
	return append(out, r.buf[:r.w]...)
}

package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/tunnel"
)

// webTermClient is a web terminal client: PTYInput lines out, raw output in.
type webTermClient struct {
	conn net.Conn
	out  *streamOutput
	enc  *json.Encoder
}

func (ts *testStreams) attachPTY(t *testing.T, h tunnel.Header) *webTermClient {
	t.Helper()
	h.Service = tunnel.ServicePTY
	c, err := ts.dial(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &webTermClient{conn: c, out: collectOutput(c), enc: json.NewEncoder(c)}
}

func (w *webTermClient) send(t *testing.T, in tunnel.PTYInput) {
	t.Helper()
	if err := w.enc.Encode(in); err != nil {
		t.Fatal(err)
	}
}

func (w *webTermClient) typeLine(t *testing.T, line string) {
	t.Helper()
	w.send(t, tunnel.PTYInput{Data: line + "\r"})
}

// pidOf asks the shell for its pid.
func (w *webTermClient) pidOf(ctx context.Context, t *testing.T) int {
	t.Helper()
	// Quoted so that the echo of the typed line does not match.
	w.typeLine(t, `echo "P""ID=$$."`)
	w.out.waitFor(ctx, t, "PID=")
	rest := w.out.waitFor(ctx, t, ".")
	pid, err := strconv.Atoi(strings.TrimSuffix(rest, "."))
	if err != nil {
		t.Fatalf("pid %q: %v", rest, err)
	}
	return pid
}

func TestPTYReconnect(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, func(c *Config) { c.PTYGrace = 300 * time.Millisecond })

	a := ts.attachPTY(t, tunnel.Header{Reconnect: "term-1", Width: 100, Height: 30})
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Fatal("attaching touched activity")
	}
	a.send(t, tunnel.PTYInput{Width: 120, Height: 40})
	if last, _ := ts.act.Last(); !last.IsZero() {
		t.Fatal("a resize touched activity")
	}
	a.typeLine(t, "MARK=dev8$((20+22)); echo first:$MARK; stty size")
	a.out.waitFor(ctx, t, "first:dev842")
	a.out.waitFor(ctx, t, "40 120")
	if last, kind := ts.act.Last(); last.IsZero() || kind != activity.ActivityPTY {
		t.Errorf("activity after typing = %v %q", last, kind)
	}
	pid := a.pidOf(ctx, t)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	a.conn.Close()

	// Same id: the scrollback comes first, then the same shell.
	b := ts.attachPTY(t, tunnel.Header{Reconnect: "term-1", Width: 90, Height: 20})
	b.out.waitFor(ctx, t, "first:dev842")
	b.typeLine(t, `echo "again:$MARK:$$"; stty size`)
	b.out.waitFor(ctx, t, fmt.Sprintf("again:dev842:%d", pid))
	b.out.waitFor(ctx, t, "20 90")

	// A second client replaces the first, which is closed.
	c := ts.attachPTY(t, tunnel.Header{Reconnect: "term-1"})
	b.out.waitEOF(ctx, t)
	c.typeLine(t, `echo third:$MARK`)
	c.out.waitFor(ctx, t, "third:dev842")

	// No client for longer than the grace period: the shell is hung up
	// and the id starts a new one.
	c.conn.Close()
	waitPidfd(ctx, t, pidfd, pid)
	d := ts.attachPTY(t, tunnel.Header{Reconnect: "term-1"})
	d.typeLine(t, `echo "fresh:${MARK-unset}"`)
	d.out.waitFor(ctx, t, "fresh:unset")
	if got := d.pidOf(ctx, t); got == pid {
		t.Error("same shell after the grace period")
	}
}

func TestPTYShellExitEndsStream(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	a := ts.attachPTY(t, tunnel.Header{Reconnect: "exit-me"})
	pid := a.pidOf(ctx, t)
	a.typeLine(t, `echo b""ye; exit`)
	all := a.out.waitEOF(ctx, t)
	if !strings.Contains(all, "bye") {
		t.Errorf("last output lost: %q", all)
	}
	waitProcessGone(ctx, t, pid)
	// The id is free again: a new shell.
	b := ts.attachPTY(t, tunnel.Header{Reconnect: "exit-me"})
	if got := b.pidOf(ctx, t); got == pid {
		t.Error("attached to an exited shell")
	}
}

func TestPTYCommand(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	a := ts.attachPTY(t, tunnel.Header{Reconnect: "cmd", Command: "echo term=$TERM; pwd; read x; echo x=$x", Width: 80, Height: 24})
	a.out.waitFor(ctx, t, "term=xterm-256color")
	a.out.waitFor(ctx, t, ts.workspace)
	a.typeLine(t, "42")
	a.out.waitFor(ctx, t, "x=42")
	a.out.waitEOF(ctx, t)
}

func TestPTYCloseKillsTerminals(t *testing.T) {
	t.Parallel()
	ctx := streamsTestCtx(t)
	ts := newTestStreams(t, nil)
	a := ts.attachPTY(t, tunnel.Header{Reconnect: "k"})
	pid := a.pidOf(ctx, t)
	a.conn.Close() // detached, within its grace period
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(ctx, t, pid)
}

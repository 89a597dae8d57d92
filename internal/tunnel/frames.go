package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux frame header layout (github.com/hashicorp/yamux const.go): version,
// type, flags (2 bytes), stream id (4), length (4), big endian.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

// frameConn is the connection yamux runs over: a websocket, where every
// Write is one message, framed and flushed on its own. yamux writes each
// frame as two Writes, its 12-byte header and then its body, which made
// every data frame two messages, two flushes and two wake-ups of the
// reader on the other end. frameConn holds a data frame's header back and
// writes it with the body as one message.
//
// Only yamux's send loop writes, one frame at a time, so the header and its
// body arrive back to back. Anything else is written as it comes: a header
// whose body does not follow goes out on its own first.
type frameConn struct {
	net.Conn
	mu      sync.Mutex
	held    bool   // hdr holds a data frame's header
	bodyLen uint32 // the held header's length field
	hdr     [yamuxHeaderSize]byte
}

// frameBuffers hold a header and its body while they are written: pooled,
// so an idle tunnel keeps none (the supervisor's memory at idle counts).
var frameBuffers = sync.Pool{New: func() any { return new([]byte) }}

func newFrameConn(c net.Conn) *frameConn { return &frameConn{Conn: c} }

func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held {
		c.held = false
		if uint32(len(p)) == c.bodyLen {
			buf := frameBuffers.Get().(*[]byte)
			*buf = append(append((*buf)[:0], c.hdr[:]...), p...)
			_, err := c.Conn.Write(*buf)
			frameBuffers.Put(buf)
			if err != nil {
				return 0, err
			}
			return len(p), nil
		}
		// Not the body announced: keep the stream as written.
		if _, err := c.Conn.Write(c.hdr[:]); err != nil {
			return 0, err
		}
	}
	if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData {
		if n := binary.BigEndian.Uint32(p[8:12]); n > 0 {
			copy(c.hdr[:], p)
			c.held, c.bodyLen = true, n
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// Package tunnel carries every connection between the server and a
// workspace's supervisor over one websocket that the supervisor dials out,
// multiplexed with yamux. So every runtime is reached the same way, behind
// NAT too, and no workspace port is ever exposed.
//
// The supervisor dials GET /api/v1/environments/{id}/tunnel with its agent
// token and becomes the yamux server: it accepts streams. The server is the
// yamux client: it opens one stream per SSH connection, terminal, forwarded
// port or IDE request. Each stream starts with a Header (one line of JSON),
// the supervisor answers with a Reply (one line of JSON), and then the stream
// carries the service's own bytes.
package tunnel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// Services a stream can ask for.
const (
	// ServiceSSH: the stream is an SSH connection to the workspace's SSH
	// server. It is already authenticated (by the user's Dev8 token at the
	// server), so the SSH server accepts it without keys.
	ServiceSSH = "ssh"
	// ServicePTY: a reconnecting terminal for the web. After the reply the
	// client sends PTYInput messages (JSON, one per line); the supervisor
	// sends the terminal's raw output.
	ServicePTY = "pty"
	// ServiceTCP: a raw TCP connection to Header.Port on the workspace's
	// loopback (port forwarding).
	ServiceTCP = "tcp"
	// ServiceIDE: a raw TCP connection to the workspace's code-server (the
	// server speaks HTTP over it).
	ServiceIDE = "ide"
	// ServiceSnapshot: a snapshot or restore job for the workspace's
	// files. After the reply the server sends the job and serves the
	// snapshot repository on the stream until the supervisor sends the
	// result (internal/snapshot: ServeJob, AcceptJob).
	ServiceSnapshot = "snapshot"
)

// Header opens a stream.
type Header struct {
	Service string `json:"service"`
	// Port is the workspace port for ServiceTCP.
	Port int `json:"port,omitempty"`
	// For ServicePTY: Reconnect names the terminal; opening a stream with
	// the same id within the grace period resumes it with its scrollback.
	Reconnect string `json:"reconnect,omitempty"`
	Width     uint16 `json:"width,omitempty"`
	Height    uint16 `json:"height,omitempty"`
	// Command runs instead of the user's shell for a new PTY (optional).
	Command string `json:"command,omitempty"`
}

// Reply answers a Header. Error is set when the service cannot be had
// (unknown service, nothing listening on the port, code-server absent).
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// PTYInput is what a web terminal client sends: keystrokes and/or a resize.
type PTYInput struct {
	Data   string `json:"data,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// maxLine bounds a header or reply line.
const maxLine = 64 << 10

// WriteHeader sends h on a new stream.
func WriteHeader(w io.Writer, h Header) error { return writeLine(w, h) }

// WriteReply answers a stream's header.
func WriteReply(w io.Writer, r Reply) error { return writeLine(w, r) }

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadHeader reads a stream's header. It reads byte by byte so that nothing
// after the header is consumed: the service gets the stream as it is.
func ReadHeader(r io.Reader) (Header, error) {
	var h Header
	err := readLine(r, &h)
	return h, err
}

// ReadReply reads the answer to a header and turns a refusal into an error.
func ReadReply(r io.Reader) error {
	var rep Reply
	if err := readLine(r, &rep); err != nil {
		return err
	}
	if !rep.OK {
		return &RefusedError{Reason: rep.Error}
	}
	return nil
}

// RefusedError is a service the supervisor declined to provide.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "workspace refused the connection: " + e.Reason }

func readLine(r io.Reader, v any) error {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read stream header: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		if len(line) >= maxLine {
			return errors.New("read stream header: line too long")
		}
		line = append(line, b[0])
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	return nil
}

// PTYReader decodes the PTYInput messages a client sends after the reply.
func PTYReader(r io.Reader) *json.Decoder {
	return json.NewDecoder(bufio.NewReader(r))
}

// Handler serves the streams a supervisor accepts. ServeStream owns conn and
// must close it. It is called on its own goroutine for every stream, after
// the header was read; it must send a Reply before anything else. ctx ends
// when the supervisor shuts down (not when the tunnel reconnects: sessions
// outlive a server restart).
type Handler interface {
	ServeStream(ctx context.Context, h Header, conn net.Conn)
}

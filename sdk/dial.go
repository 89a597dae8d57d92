package sdk

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// DialSSH opens an SSH connection to the environment's workspace, tunnelled
// through the server over a websocket. The server has already authenticated
// the caller by the token, so the workspace's SSH server accepts any user
// name without keys. ctx bounds the dial only (as with net.Dialer): the
// connection lives until it is closed.
func (c *Client) DialSSH(ctx context.Context, id string) (net.Conn, error) {
	return c.dialNetConn(ctx, envPath(id, "/ssh"), nil)
}

// DialPort opens a TCP connection to port on the workspace's loopback,
// tunnelled through the server. ctx bounds the dial only.
func (c *Client) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: want 1–65535", port)
	}
	return c.dialNetConn(ctx, envPath(id, "/port-forward"), url.Values{"port": {strconv.Itoa(port)}})
}

func (c *Client) dialNetConn(ctx context.Context, path string, q url.Values) (net.Conn, error) {
	ws, err := c.dialWebsocket(ctx, path, q)
	if err != nil {
		return nil, err
	}
	// The conn must outlive a dial deadline; Close ends it.
	return websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary), nil
}

// dialWebsocket opens a websocket on an /api/v1 path with the client's
// token. A refused handshake with an API error body is an *Error.
func (c *Client) dialWebsocket(ctx context.Context, path string, q url.Values) (*websocket.Conn, error) {
	endpoint, err := c.endpoint(path, q)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	c.authorize(h)
	ws, resp, err := websocket.Dial(ctx, endpoint, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var data []byte
			if resp.Body != nil {
				data, _ = io.ReadAll(resp.Body)
			}
			return nil, decodeError(resp, data)
		}
		return nil, err
	}
	return ws, nil
}

// PTYOptions configures DialPTY.
type PTYOptions struct {
	// Reconnect names the terminal: dialing again with the same id within
	// the server's grace period resumes it with its scrollback. Empty makes
	// a new random id (see PTY.ID).
	Reconnect string
	// Width and Height are the initial size in cells (0: the server's
	// default).
	Width, Height uint16
	// Command runs instead of the user's shell in a new terminal
	// (optional; ignored when resuming).
	Command string
}

// PTY is a reconnecting terminal in the workspace, the one web terminals
// use. Read returns the terminal's output; Write types; Resize changes the
// window size.
type PTY struct {
	id   string
	ws   *websocket.Conn
	out  net.Conn // reads binary messages from ws
	ctx  context.Context
	wmu  sync.Mutex
	stop context.CancelFunc
}

// ptyInput is what the client sends, one JSON text message each.
type ptyInput struct {
	Data   string `json:"data,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// DialPTY opens (or, with opts.Reconnect, resumes) a terminal in the
// environment's workspace. ctx bounds the dial only.
func (c *Client) DialPTY(ctx context.Context, id string, opts PTYOptions) (*PTY, error) {
	if opts.Reconnect == "" {
		opts.Reconnect = newUUID()
	}
	q := url.Values{"reconnect": {opts.Reconnect}}
	if opts.Width > 0 {
		q.Set("width", strconv.Itoa(int(opts.Width)))
	}
	if opts.Height > 0 {
		q.Set("height", strconv.Itoa(int(opts.Height)))
	}
	if opts.Command != "" {
		q.Set("command", opts.Command)
	}
	ws, err := c.dialWebsocket(ctx, envPath(id, "/pty"), q)
	if err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	return &PTY{
		id:   opts.Reconnect,
		ws:   ws,
		out:  websocket.NetConn(life, ws, websocket.MessageBinary),
		ctx:  life,
		stop: stop,
	}, nil
}

// ID is the terminal's reconnect id.
func (p *PTY) ID() string { return p.id }

// Read reads the terminal's output.
func (p *PTY) Read(b []byte) (int, error) { return p.out.Read(b) }

// Write sends b to the terminal as typed input. b must be UTF-8 text (the
// protocol carries it as a JSON string).
func (p *PTY) Write(b []byte) (int, error) {
	if err := p.send(ptyInput{Data: string(b)}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Resize sets the terminal's size in cells.
func (p *PTY) Resize(width, height uint16) error {
	return p.send(ptyInput{Width: width, Height: height})
}

func (p *PTY) send(in ptyInput) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.ws.Write(p.ctx, websocket.MessageText, data)
}

// Close closes the connection. The terminal itself lives on in the
// workspace for the server's grace period, so it can be resumed.
func (p *PTY) Close() error {
	err := p.out.Close()
	p.stop()
	return err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

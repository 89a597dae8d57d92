package streams

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
)

// The workspace's SSH server. Each tunnel stream of ServiceSSH is one SSH
// connection, already authenticated by the server with the user's Dev8
// token, so clients get in with "none" authentication under any user name
// and need no key. Sessions (shell, exec, sftp subsystem), local and remote
// port forwarding and agent forwarding are served; X11 forwarding is not.
//
// gliderlabs/ssh runs the connections; sessions and forwarding have handlers
// of their own here, for the activity rule (see Streams), exit signals,
// untranslated PTY output and process-session cleanup.

// loadHostKey reads the ed25519 host key at path, generating it (0600, with
// path+".pub" beside it) if it does not exist yet, so the key a client pins
// stays the same across restarts.
func loadHostKey(path string) (gossh.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		return gossh.ParsePrivateKey(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "dev8 workspace host key")
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".ssh_host_key-*") // 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Link, not rename: if another process created the key meanwhile, keep
	// theirs.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(path+".pub", gossh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	return signer, nil
}

type sshServer struct {
	s   *Streams
	srv *gliderssh.Server
}

type fwdKey struct{}

func newSSHServer(s *Streams, signer gossh.Signer) *sshServer {
	x := &sshServer{s: s}
	// Algorithms are x/crypto's defaults. The client's order picks the
	// cipher, and on amd64 x/crypto's AES-GCM uses the CPU's AES
	// instructions while its chacha20-poly1305 (OpenSSH's first choice)
	// has no assembly: so dev8 ssh (x/crypto, AES-GCM first) and the Host
	// blocks of dev8 config-ssh ask for AES-GCM first (docs/benchmarks.md,
	// tunnel throughput). chacha20-poly1305 stays offered for the clients
	// that want it.
	x.srv = &gliderssh.Server{
		HostSigners: []gliderssh.Signer{signer},
		Version:     "Dev8",
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":      x.handleSession,
			"direct-tcpip": x.handleDirectTCPIP,
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{
			"tcpip-forward":        x.handleTCPIPForward,
			"cancel-tcpip-forward": x.handleCancelTCPIPForward,
		},
		// Every request a handler does not know (keepalive@openssh.com,
		// no-more-sessions@openssh.com, ...) is answered "failure", which
		// is all a keepalive needs; none of them counts as activity.
		ConnCallback: func(ctx gliderssh.Context, c net.Conn) net.Conn {
			f := &remoteForwards{}
			ctx.SetValue(fwdKey{}, f)
			context.AfterFunc(ctx, f.closeAll)
			return c
		},
		ConnectionFailedCallback: func(_ net.Conn, err error) {
			s.log.Debug("ssh handshake failed", "err", err)
		},
	}
	return x
}

// serveSFTP serves the sftp subsystem in-process, with the workspace
// directory as the start directory. scp of OpenSSH 9 uses it too.
func (sess *sshSession) serveSFTP() {
	// The server's Close must not close the channel: the exit status
	// still has to go out on it.
	rwc := struct {
		io.Reader
		io.Writer
		io.Closer
	}{sess.in, sess.ch, nopCloser{}}
	code := 0
	// WithAllocator reuses each session's packet buffers (256 KiB pages,
	// a few per request in flight, dropped when the session ends) instead
	// of allocating one per packet: an scp through the tunnel took 0.6 s
	// less supervisor CPU per GB, most of it the GC (docs/benchmarks.md).
	// pkg/sftp calls it experimental; TestOpenSSH copies 50 MB both ways
	// through it.
	srv, err := sftp.NewServer(rwc, sftp.WithServerWorkingDirectory(sess.x.s.cfg.WorkspaceDir), sftp.WithAllocator())
	if err == nil {
		if err = srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
			code = 1
		}
		_ = srv.Close()
	} else {
		code = 1
	}
	if code != 0 {
		sess.x.s.log.Debug("sftp ended", "err", err)
	}
	<-sess.replied
	_, _ = sess.ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(code)}))
	_ = sess.ch.Close()
	close(sess.done)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// forwardAgent listens on a private Unix socket whose connections are
// carried to the client's agent (auth-agent@openssh.com channels). stop
// closes it.
func (sess *sshSession) forwardAgent() (sock string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "dev8-agent-") // 0700
	if err != nil {
		return "", nil, err
	}
	sock = filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				ch, reqs, err := sess.conn.OpenChannel("auth-agent@openssh.com", nil)
				if err != nil {
					_ = c.Close()
					return
				}
				go gossh.DiscardRequests(reqs)
				join(context.Background(), c, c, ch)
			}()
		}
	}()
	return sock, func() { _ = ln.Close(); _ = os.RemoveAll(dir) }, nil
}

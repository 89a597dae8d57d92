package streams

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/supervisor/activity"
)

// SSH port forwarding: -L (direct-tcpip) and -R (tcpip-forward).

// handleDirectTCPIP serves `ssh -L`: a connection from the client to a
// host:port as seen from the workspace.
func (x *sshServer) handleDirectTCPIP(_ *gliderssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, ctx gliderssh.Context) {
	var d struct {
		DestAddr   string
		DestPort   uint32
		OriginAddr string
		OriginPort uint32
	}
	if err := gossh.Unmarshal(nc.ExtraData(), &d); err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if !x.s.hold() {
		_ = nc.Reject(gossh.ResourceShortage, "the workspace is shutting down")
		return
	}
	defer x.s.wg.Done()
	dialer := net.Dialer{Timeout: 10 * time.Second}
	target, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(d.DestAddr, strconv.FormatUint(uint64(d.DestPort), 10)))
	if err != nil {
		_ = nc.Reject(gossh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	join(ctx, ch, &touchReader{r: ch, act: x.s.act, kind: activity.ActivityPortFwd}, target)
}

// remoteForwards are the `ssh -R` listeners of one connection.
type remoteForwards struct {
	mu     sync.Mutex
	closed bool
	fwds   []*remoteForward
}

type remoteForward struct {
	bindAddr  string
	reqPort   uint32
	port      uint32
	ln        net.Listener
	closeOnce sync.Once
}

func (f *remoteForward) close() { f.closeOnce.Do(func() { _ = f.ln.Close() }) }

func (r *remoteForwards) add(f *remoteForward) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.fwds = append(r.fwds, f)
	return true
}

func (r *remoteForwards) remove(bindAddr string, port uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range r.fwds {
		if f.bindAddr == bindAddr && (f.port == port || (f.reqPort == port && port != 0)) {
			f.close()
			r.fwds = append(r.fwds[:i], r.fwds[i+1:]...)
			return true
		}
	}
	return false
}

func (r *remoteForwards) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, f := range r.fwds {
		f.close()
	}
	r.fwds = nil
}

// handleTCPIPForward serves `ssh -R`: it listens on the workspace's loopback
// (127.0.0.1, whatever bind address the client asked for) and carries each
// connection to the client.
func (x *sshServer) handleTCPIPForward(ctx gliderssh.Context, _ *gliderssh.Server, req *gossh.Request) (bool, []byte) {
	var r struct {
		BindAddr string
		BindPort uint32
	}
	if gossh.Unmarshal(req.Payload, &r) != nil || r.BindPort > 65535 {
		return false, nil
	}
	fwds, _ := ctx.Value(fwdKey{}).(*remoteForwards)
	conn, _ := ctx.Value(gliderssh.ContextKeyConn).(*gossh.ServerConn)
	if fwds == nil || conn == nil {
		return false, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(r.BindPort), 10)))
	if err != nil {
		x.s.log.Debug("ssh: remote forward refused", "port", r.BindPort, "err", err)
		return false, nil
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	f := &remoteForward{bindAddr: r.BindAddr, reqPort: r.BindPort, port: port, ln: ln}
	if !fwds.add(f) {
		f.close()
		return false, nil
	}
	go x.acceptForwarded(ctx, conn, f)
	if r.BindPort == 0 {
		return true, gossh.Marshal(struct{ Port uint32 }{port})
	}
	return true, nil
}

func (x *sshServer) handleCancelTCPIPForward(ctx gliderssh.Context, _ *gliderssh.Server, req *gossh.Request) (bool, []byte) {
	var r struct {
		BindAddr string
		BindPort uint32
	}
	if gossh.Unmarshal(req.Payload, &r) != nil {
		return false, nil
	}
	fwds, _ := ctx.Value(fwdKey{}).(*remoteForwards)
	return fwds != nil && fwds.remove(r.BindAddr, r.BindPort), nil
}

func (x *sshServer) acceptForwarded(ctx context.Context, conn *gossh.ServerConn, f *remoteForward) {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !x.s.hold() {
			_ = c.Close()
			return
		}
		go func() {
			defer x.s.wg.Done()
			origin := c.RemoteAddr().(*net.TCPAddr)
			payload := gossh.Marshal(struct {
				DestAddr   string
				DestPort   uint32
				OriginAddr string
				OriginPort uint32
			}{f.bindAddr, f.port, origin.IP.String(), uint32(origin.Port)})
			ch, reqs, err := conn.OpenChannel("forwarded-tcpip", payload)
			if err != nil {
				_ = c.Close()
				return
			}
			go gossh.DiscardRequests(reqs)
			join(ctx, ch, &touchReader{r: ch, act: x.s.act, kind: activity.ActivityPortFwd}, c)
		}()
	}
}

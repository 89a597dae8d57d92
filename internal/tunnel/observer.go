package tunnel

// Observer is told about tunnels and the streams opened through them, for
// metrics (internal/metrics has one). Its methods must be cheap and safe
// for concurrent use.
type Observer interface {
	// TunnelConnected: a supervisor's tunnel was accepted.
	TunnelConnected()
	// StreamOpened: a stream for service was opened (err nil) or failed.
	StreamOpened(service string, err error)
}

type nopObserver struct{}

func (nopObserver) TunnelConnected()           {}
func (nopObserver) StreamOpened(string, error) {}

// SetObserver sets who is told about tunnels and streams. Call it before
// the Registry is used.
func (r *Registry) SetObserver(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	r.obs = o
}

// Sessions is how many supervisors are connected now.
func (r *Registry) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sessions {
		if !s.IsClosed() {
			n++
		}
	}
	return n
}

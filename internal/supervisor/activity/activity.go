// Package activity records when a person last used the workspace, and how.
// The supervisor's streams touch it; the reporter tells the server.
package activity

import (
	"sync"
	"time"
)

// Activity kinds: what a person did that counts as using the workspace.
const (
	ActivitySSH     = "ssh"  // bytes from the client in an SSH session channel
	ActivityPTY     = "pty"  // keystrokes in a web terminal
	ActivityPortFwd = "port" // data through a forwarded port
)

// Activity remembers when a person last did something in the workspace, and
// how. Components Touch it; the reporter tells the server. An open but idle
// connection never touches it, so it cannot keep a workspace alive.
type Activity struct {
	mu   sync.Mutex
	last time.Time
	kind string
	now  func() time.Time
}

// NewActivity returns an Activity on the given clock (nil: time.Now).
func NewActivity(now func() time.Time) *Activity {
	if now == nil {
		now = time.Now
	}
	return &Activity{now: now}
}

// Touch records activity of kind now.
func (a *Activity) Touch(kind string) {
	t := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.After(a.last) {
		a.last, a.kind = t, kind
	}
}

// Last returns when and how the workspace was last used (zero if never).
func (a *Activity) Last() (time.Time, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.kind
}

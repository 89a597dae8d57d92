// Package testclock is a clock that tests move instead of sleeping.
package testclock

import (
	"sync"
	"time"
)

// Clock stands still until told to move; it is safe for concurrent use
// (the code under test reads it from its own goroutines).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// At returns a clock that reads t.
func At(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

package lifecycle

import (
	"context"
	"sync"
	"time"
)

// queue is a set of environment ids waiting to be reconciled. An id is held
// at most once however often it is added, and is never handed to two workers
// at once: an id added while it is being processed is handed out again after
// done. This is what makes operations on one environment strictly sequential
// while different environments proceed in parallel.
type queue struct {
	mu         sync.Mutex
	waiting    []string
	queued     map[string]bool // in waiting
	processing map[string]bool
	dirty      map[string]bool // added while processing
	closed     bool
	wake       chan struct{} // capacity 1: a signal that waiting may be non-empty
}

func newQueue() *queue {
	return &queue{
		queued:     make(map[string]bool),
		processing: make(map[string]bool),
		dirty:      make(map[string]bool),
		wake:       make(chan struct{}, 1),
	}
}

func (q *queue) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.processing[id] {
		q.dirty[id] = true
		return
	}
	if q.queued[id] {
		return
	}
	q.queued[id] = true
	q.waiting = append(q.waiting, id)
	q.signal()
}

// addAfter adds id once d has passed, unless the queue is closed by then.
func (q *queue) addAfter(id string, d time.Duration) {
	time.AfterFunc(d, func() { q.add(id) })
}

// signal wakes one waiting worker; the caller holds mu.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// get blocks until an id is ready or ctx is done.
func (q *queue) get(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.waiting) > 0 {
			id := q.waiting[0]
			q.waiting = q.waiting[1:]
			delete(q.queued, id)
			q.processing[id] = true
			if len(q.waiting) > 0 {
				q.signal() // let another worker take the next one
			}
			q.mu.Unlock()
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.wake:
		}
	}
}

// done releases id; if it was added while processing it is queued again.
func (q *queue) done(id string) {
	q.mu.Lock()
	delete(q.processing, id)
	again := q.dirty[id]
	delete(q.dirty, id)
	q.mu.Unlock()
	if again {
		q.add(id)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// len is the number of ids waiting (not counting those being processed).
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

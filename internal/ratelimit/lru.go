// Package ratelimit holds the server's throttles: token buckets per key
// (Limiter) and failure backoff per key (Backoff), in memory, each keeping
// at most a fixed number of keys, so a flood of distinct clients cannot
// grow the server's memory without bound; and the same backoff over a
// store that several server replicas share (SharedBackoff).
package ratelimit

import "container/list"

// lru is a map with a hard size cap that forgets the least recently used key
// first. It is not safe for concurrent use; its owners lock around it.
type lru[V any] struct {
	max   int
	items map[string]*list.Element
	order *list.List // front = most recently used
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	if max < 1 {
		max = 1
	}
	return &lru[V]{max: max, items: make(map[string]*list.Element), order: list.New()}
}

// get returns key's value and marks it used.
func (c *lru[V]) get(key string) (V, bool) {
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// add stores a new key, evicting the least recently used one when full.
func (c *lru[V]) add(key string, val V) {
	if el, ok := c.items[key]; ok {
		el.Value.(*lruEntry[V]).val = val
		c.order.MoveToFront(el)
		return
	}
	for len(c.items) >= c.max {
		c.removeElement(c.order.Back())
	}
	c.items[key] = c.order.PushFront(&lruEntry[V]{key: key, val: val})
}

func (c *lru[V]) remove(key string) {
	if el, ok := c.items[key]; ok {
		c.removeElement(el)
	}
}

// pruneOldest removes least recently used entries while stale says so, and
// stops at the first fresh one: entries behind it were used even later.
func (c *lru[V]) pruneOldest(stale func(V) bool) {
	for el := c.order.Back(); el != nil; el = c.order.Back() {
		if !stale(el.Value.(*lruEntry[V]).val) {
			return
		}
		c.removeElement(el)
	}
}

func (c *lru[V]) removeElement(el *list.Element) {
	c.order.Remove(el)
	delete(c.items, el.Value.(*lruEntry[V]).key)
}

func (c *lru[V]) len() int { return len(c.items) }

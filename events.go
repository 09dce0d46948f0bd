package main

import (
	"sync"
)

// hub tells long-polling requests that a task changed. The store calls notify after
// every commit with the ids of the tasks it touched.
type hub struct {
	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{}
	done     chan struct{} // closed at shutdown: long polls answer at once
	once     sync.Once
}

func newHub() *hub {
	return &hub{watchers: map[string]map[chan struct{}]struct{}{}, done: make(chan struct{})}
}

// watch returns a channel that receives after each change of task id, and a function to stop.
func (h *hub) watch(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.watchers[id] == nil {
		h.watchers[id] = map[chan struct{}]struct{}{}
	}
	h.watchers[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.watchers[id], ch)
		if len(h.watchers[id]) == 0 {
			delete(h.watchers, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.watchers) == 0 {
		return
	}
	for _, id := range ids {
		for ch := range h.watchers[id] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// closeAll makes every long poll answer now, before shutdown.
func (h *hub) closeAll() { h.once.Do(func() { close(h.done) }) }

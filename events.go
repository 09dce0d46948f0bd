package main

import (
	"net/http"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/signing"
	"github.com/asyncqueue/asyncqueue/internal/store"
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

// SecretOverlap is how long a rotated-out webhook secret keeps signing.
const SecretOverlap = 24 * time.Hour

func newSecret() string { return signing.NewSecret() }

// getWebhookSecret is GET /v1/webhook-secret.
func (a *App) getWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	team, err := a.store.Team(r.Context(), teamOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, secretJSON(team))
}

func secretJSON(team *store.Team) map[string]any {
	out := map[string]any{"secret": team.WebhookSecret}
	if ss := team.Secrets(store.NowMS()); len(ss) > 1 {
		out["previousSecretExpiresAt"] = formatTime(team.PrevSecretUntil)
	}
	return out
}

// rotateWebhookSecret is POST /v1/webhook-secret/rotate: a new secret now, the old one
// still signing for SecretOverlap.
func (a *App) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	var team *store.Team
	err := a.store.Write(r.Context(), func(tx store.Tx) error {
		until := time.Now().Add(SecretOverlap).UnixMilli()
		if err := tx.RotateSecret(teamOf(r), newSecret(), until); err != nil {
			return err
		}
		var err error
		team, err = tx.Team(teamOf(r))
		return err
	})
	if err != nil {
		return err
	}
	a.setTeam(team)
	return writeJSON(w, http.StatusOK, secretJSON(team))
}

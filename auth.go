package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// KeyCacheTTL is how long a verified API key is trusted without asking the database again.
// A key revoked with the offline CLI stops working within this time; revoking through the
// running server takes effect at once.
const KeyCacheTTL = time.Second

type keyEntry struct {
	teamID  string
	checked time.Time
}

// authenticated resolves the API key (Bearer or X-API-Key) to its team.
func (a *App) authenticated(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		raw := r.Header.Get("X-API-Key")
		if auth := r.Header.Get("Authorization"); raw == "" && auth != "" {
			scheme, token, ok := strings.Cut(auth, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return errKeyInvalid
			}
			raw = strings.TrimSpace(token)
		}
		if raw == "" {
			return errKeyRequired
		}
		// A key with a bad checksum cannot exist: refuse it without touching the database.
		if !keys.ValidAPIKey(raw) {
			return errKeyInvalid
		}
		teamID, err := a.keyTeam(r.Context(), keys.Hash(raw))
		if err != nil {
			return err
		}
		if err := a.teamLimit.allow(w, teamID); err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), teamKey, teamID)))
	}
}

// keyTeam returns the team of a live API key, from the cache when fresh.
func (a *App) keyTeam(ctx context.Context, hash [32]byte) (string, error) {
	if e, ok := a.keyCache.Load(hash); ok && time.Since(e.(keyEntry).checked) < KeyCacheTTL {
		return e.(keyEntry).teamID, nil
	}
	k, err := a.liveKey(ctx, hash)
	if errors.Is(err, errKeyInvalid) {
		a.keyCache.Delete(hash)
		return "", err
	} else if err != nil {
		return "", err
	}
	a.keyCache.Store(hash, keyEntry{teamID: k.TeamID, checked: time.Now()})
	return k.TeamID, nil
}

// liveKey looks up an API key by its hash: errKeyInvalid when it is unknown or revoked.
// The API (keyTeam) and the admin login both decide through it.
func (a *App) liveKey(ctx context.Context, hash [32]byte) (*store.APIKey, error) {
	k, err := a.store.APIKeyByHash(ctx, hash[:])
	if store.IsNotFound(err) {
		return nil, errKeyInvalid
	} else if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil || !keys.Equal([32]byte(k.Hash), hash) {
		return nil, errKeyInvalid
	}
	return k, nil
}

// forgetKeys drops cached keys so that a revocation through this server applies at once.
func (a *App) forgetKeys() { a.keyCache.Clear() }

// team returns a team (for its webhook secrets), cached; rotation through this server refreshes it.
func (a *App) team(ctx context.Context, id string) (*store.Team, error) {
	a.teamMu.Lock()
	t, ok := a.teamCache[id]
	a.teamMu.Unlock()
	if ok {
		return t, nil
	}
	t, err := a.store.Team(ctx, id)
	if err != nil {
		return nil, err
	}
	a.setTeam(t)
	return t, nil
}

// forgetTeams drops the cached teams (another node changed one).
func (a *App) forgetTeams() {
	a.teamMu.Lock()
	a.teamCache = nil
	a.teamMu.Unlock()
}

func (a *App) setTeam(t *store.Team) {
	a.teamMu.Lock()
	defer a.teamMu.Unlock()
	if a.teamCache == nil {
		a.teamCache = map[string]*store.Team{}
	}
	a.teamCache[t.ID] = t
}

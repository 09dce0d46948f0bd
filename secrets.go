package main

// The team's webhook secret: read it, and rotate it with the old one still signing for a while.

import (
	"context"
	"net/http"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/signing"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

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
	team, err := a.rotateSecret(r.Context(), teamOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, secretJSON(team))
}

// rotateSecret gives team a new webhook secret; the old one keeps signing for
// SecretOverlap. The API and the admin page both call it.
func (a *App) rotateSecret(ctx context.Context, team string) (*store.Team, error) {
	var t *store.Team
	err := a.store.Write(ctx, func(tx store.Tx) error {
		until := time.Now().Add(SecretOverlap).UnixMilli()
		if err := tx.RotateSecret(team, newSecret(), until); err != nil {
			return err
		}
		var err error
		t, err = tx.Team(team)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.setTeam(t)
	return t, nil
}

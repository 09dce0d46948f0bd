package postgres

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// teamsLock is the advisory lock key CountTeams takes ("aqteams" in ASCII), so that nodes
// starting at once on an empty database agree on which one makes the first team.
const teamsLock int64 = 0x61717465616d73

const (
	teamCols   = `id, name, webhook_secret, prev_webhook_secret, prev_secret_until, created_at`
	apiKeyCols = `id, team_id, hash, prefix, name, created_at, last_used_at, revoked_at`
)

// InsertTeam adds a team.
func (t *Tx) InsertTeam(team *store.Team) error {
	_, err := t.exec(`insert into teams (id, name, webhook_secret, created_at) values ($1, $2, $3, $4)`,
		team.ID, team.Name, team.WebhookSecret, team.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert team: %w", err)
	}
	t.config = true
	return nil
}

// InsertAPIKey adds a key.
func (t *Tx) InsertAPIKey(k *store.APIKey) error {
	_, err := t.exec(`insert into api_keys (id, team_id, hash, prefix, name, created_at) values ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.TeamID, k.Hash, k.Prefix, k.Name, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	t.config = true
	return nil
}

// RevokeAPIKey marks a key revoked; it reports whether a live key of the team was found.
func (t *Tx) RevokeAPIKey(teamID, id string, now int64) (bool, error) {
	tag, err := t.exec(`update api_keys set revoked_at = $1 where id = $2 and team_id = $3 and revoked_at is null`, now, id, teamID)
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		t.config = true
	}
	return tag.RowsAffected() == 1, nil
}

// APIKeyTeam returns the team of a key, live or revoked, locking the key's row.
func (t *Tx) APIKeyTeam(id string) (string, error) {
	var teamID string
	if err := t.get(`select team_id from api_keys where id = $1 for update`, []any{id}, &teamID); err != nil {
		return "", err
	}
	return teamID, nil
}

// TeamByName reads a team for update by its name.
func (t *Tx) TeamByName(name string) (*store.Team, error) {
	return txGetStruct[store.Team](t, `select `+teamCols+` from teams where name = $1 for update`, name)
}

// Team reads a team for update.
func (t *Tx) Team(id string) (*store.Team, error) {
	return txGetStruct[store.Team](t, `select `+teamCols+` from teams where id = $1 for update`, id)
}

// CountTeams counts the teams. It first takes an advisory lock held until the commit, so
// that two writes that count and then add a team run one after the other.
func (t *Tx) CountTeams() (int, error) {
	if err := t.lock(`select pg_advisory_xact_lock($1)`, teamsLock); err != nil {
		return 0, fmt.Errorf("count teams: %w", err)
	}
	var n int
	err := t.get(`select count(*) from teams`, nil, &n)
	return n, err
}

// RotateSecret makes secret current and keeps the old one signing until prevUntil.
func (t *Tx) RotateSecret(teamID, secret string, prevUntil int64) error {
	_, err := t.exec(`update teams set prev_webhook_secret = webhook_secret, prev_secret_until = $1,
		webhook_secret = $2 where id = $3`, prevUntil, secret, teamID)
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	t.config = true
	return nil
}

// Team reads a team.
func (s *Store) Team(ctx context.Context, id string) (*store.Team, error) {
	return getStruct[store.Team](ctx, s, `select `+teamCols+` from teams where id = $1`, id)
}

// Teams lists all teams, oldest first.
func (s *Store) Teams(ctx context.Context) ([]store.Team, error) {
	return selectStructs[store.Team](ctx, s, `select `+teamCols+` from teams order by created_at, name`)
}

// APIKeyByHash finds a live or revoked key by its hash.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*store.APIKey, error) {
	return getStruct[store.APIKey](ctx, s, `select `+apiKeyCols+` from api_keys where hash = $1`, hash)
}

// APIKeys lists a team's keys (all teams' when teamID is empty), oldest first.
func (s *Store) APIKeys(ctx context.Context, teamID string) ([]store.APIKey, error) {
	if teamID == "" {
		return selectStructs[store.APIKey](ctx, s, `select `+apiKeyCols+` from api_keys order by created_at, id`)
	}
	return selectStructs[store.APIKey](ctx, s, `select `+apiKeyCols+` from api_keys where team_id = $1 order by created_at, id`, teamID)
}

// idempotencyLock is the first key of the advisory locks on Idempotency-Keys.
const idempotencyLock int32 = 0x61716964 // "aqid"

// Idempotency finds a key used since notBefore. It first locks the key itself (an advisory
// lock held until the commit), so that two requests with the same key on two nodes run one
// after the other and the second finds the first's task.
func (t *Tx) Idempotency(teamID, key string, notBefore int64) (*store.Idempotency, error) {
	if err := t.lock(`select pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))`, idempotencyLock, teamID, key); err != nil {
		return nil, fmt.Errorf("lock idempotency key: %w", err)
	}
	return txGetStruct[store.Idempotency](t, `select team_id, key, request_hash, task_id, created_at from idempotency_keys
		where team_id = $1 and key = $2 and created_at >= $3 for update`, teamID, key, notBefore)
}

// PutIdempotency remembers a key, replacing an expired one.
func (t *Tx) PutIdempotency(i *store.Idempotency) error {
	_, err := t.exec(`insert into idempotency_keys (team_id, key, request_hash, task_id, created_at)
		values ($1, $2, $3, $4, $5) on conflict (team_id, key) do update set request_hash = excluded.request_hash,
		task_id = excluded.task_id, created_at = excluded.created_at`, i.TeamID, i.Key, i.RequestHash, i.TaskID, i.CreatedAt)
	if err != nil {
		return fmt.Errorf("remember idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotency forgets up to limit keys older than before.
func (t *Tx) PruneIdempotency(before int64, limit int) (int64, error) {
	tag, err := t.exec(`delete from idempotency_keys where (team_id, key) in
		(select team_id, key from idempotency_keys where created_at < $1 limit $2 for update skip locked)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

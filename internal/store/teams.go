package store

import (
	"context"
	"fmt"
)

// Team owns tasks, API keys and a webhook secret.
type Team struct {
	ID                string  `db:"id" json:"id"`
	Name              string  `db:"name" json:"name"`
	WebhookSecret     string  `db:"webhook_secret" json:"-"`
	PrevWebhookSecret *string `db:"prev_webhook_secret" json:"-"`
	PrevSecretUntil   *int64  `db:"prev_secret_until" json:"-"`
	CreatedAt         int64   `db:"created_at" json:"-"`
}

// Secrets returns the secrets that sign now: the current one, then the previous one while
// its overlap lasts.
func (t *Team) Secrets(now int64) []string {
	s := []string{t.WebhookSecret}
	if t.PrevWebhookSecret != nil && t.PrevSecretUntil != nil && now < *t.PrevSecretUntil {
		s = append(s, *t.PrevWebhookSecret)
	}
	return s
}

// APIKey is a stored key: only its hash and a display prefix.
type APIKey struct {
	ID         string `db:"id" json:"id"`
	TeamID     string `db:"team_id" json:"teamId"`
	Hash       []byte `db:"hash" json:"-"`
	Prefix     string `db:"prefix" json:"prefix"`
	Name       string `db:"name" json:"name"`
	CreatedAt  int64  `db:"created_at" json:"-"`
	LastUsedAt *int64 `db:"last_used_at" json:"-"`
	RevokedAt  *int64 `db:"revoked_at" json:"-"`
}

// InsertTeam adds a team.
func (t *Tx) InsertTeam(team *Team) error {
	_, err := t.NamedExec(`insert into teams (id, name, webhook_secret, created_at)
		values (:id, :name, :webhook_secret, :created_at)`, team)
	if err != nil {
		return fmt.Errorf("insert team: %w", err)
	}
	return nil
}

// InsertAPIKey adds a key.
func (t *Tx) InsertAPIKey(k *APIKey) error {
	_, err := t.NamedExec(`insert into api_keys (id, team_id, hash, prefix, name, created_at)
		values (:id, :team_id, :hash, :prefix, :name, :created_at)`, k)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// RevokeAPIKey marks a key revoked; it reports whether a live key of the team was found.
func (t *Tx) RevokeAPIKey(teamID, id string, now int64) (bool, error) {
	res, err := t.Exec(`update api_keys set revoked_at = ? where id = ? and team_id = ? and revoked_at is null`, now, id, teamID)
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// TeamByName finds a team inside a write.
func (t *Tx) TeamByName(name string) (*Team, error) {
	var team Team
	if err := t.Get(&team, `select * from teams where name = ?`, name); err != nil {
		return nil, err
	}
	return &team, nil
}

const qTeamByID = `select * from teams where id = ?`

// Team reads a team inside a write.
func (t *Tx) Team(id string) (*Team, error) {
	var team Team
	if err := t.Get(&team, qTeamByID, id); err != nil {
		return nil, err
	}
	return &team, nil
}

// CountTeams counts teams inside a write.
func (t *Tx) CountTeams() (int, error) {
	var n int
	err := t.Get(&n, `select count(*) from teams`)
	return n, err
}

// RotateSecret makes secret current and keeps the old one signing until prevUntil.
func (t *Tx) RotateSecret(teamID, secret string, prevUntil int64) error {
	_, err := t.Exec(`update teams set prev_webhook_secret = webhook_secret, prev_secret_until = ?,
		webhook_secret = ? where id = ?`, prevUntil, secret, teamID)
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	return nil
}

// Team reads a team.
func (s *Store) Team(ctx context.Context, id string) (*Team, error) {
	var team Team
	if err := s.get(ctx, &team, qTeamByID, id); err != nil {
		return nil, err
	}
	return &team, nil
}

// Teams lists all teams.
func (s *Store) Teams(ctx context.Context) ([]Team, error) {
	var ts []Team
	err := s.sel(ctx, &ts, `select * from teams order by created_at, name`)
	return ts, err
}

// APIKeyByHash finds a live or revoked key by its hash.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	var k APIKey
	if err := s.get(ctx, &k, `select * from api_keys where hash = ?`, hash); err != nil {
		return nil, err
	}
	return &k, nil
}

// APIKeys lists a team's keys (all teams when teamID is empty).
func (s *Store) APIKeys(ctx context.Context, teamID string) ([]APIKey, error) {
	var ks []APIKey
	var err error
	if teamID == "" {
		err = s.sel(ctx, &ks, `select * from api_keys order by created_at`)
	} else {
		err = s.sel(ctx, &ks, `select * from api_keys where team_id = ? order by created_at`, teamID)
	}
	return ks, err
}

// Idempotency is a remembered Idempotency-Key.
type Idempotency struct {
	TeamID      string `db:"team_id"`
	Key         string `db:"key"`
	RequestHash []byte `db:"request_hash"`
	TaskID      string `db:"task_id"`
	CreatedAt   int64  `db:"created_at"`
}

// Idempotency finds a key used since notBefore.
func (t *Tx) Idempotency(teamID, key string, notBefore int64) (*Idempotency, error) {
	var i Idempotency
	err := t.Get(&i, `select * from idempotency_keys where team_id = ? and key = ? and created_at >= ?`, teamID, key, notBefore)
	if err != nil {
		return nil, err
	}
	return &i, nil
}

// PutIdempotency remembers a key (replacing an expired one).
func (t *Tx) PutIdempotency(i *Idempotency) error {
	_, err := t.NamedExec(`insert or replace into idempotency_keys (team_id, key, request_hash, task_id, created_at)
		values (:team_id, :key, :request_hash, :task_id, :created_at)`, i)
	if err != nil {
		return fmt.Errorf("remember idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotency forgets keys older than before, a few at a time.
func (t *Tx) PruneIdempotency(before int64, limit int) (int64, error) {
	res, err := t.Exec(`delete from idempotency_keys where (team_id, key) in
		(select team_id, key from idempotency_keys where created_at < ? limit ?)`, before, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

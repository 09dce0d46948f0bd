package store

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

// Idempotency is a remembered Idempotency-Key.
type Idempotency struct {
	TeamID      string `db:"team_id"`
	Key         string `db:"key"`
	RequestHash []byte `db:"request_hash"`
	TaskID      string `db:"task_id"`
	CreatedAt   int64  `db:"created_at"`
}

// VaultToken is a sealed secret of the Token Vault.
type VaultToken struct {
	ID        string `db:"id"`
	TeamID    string `db:"team_id"`
	Name      string `db:"name"`
	Sealed    []byte `db:"sealed"`
	CreatedAt int64  `db:"created_at"`
	DeletedAt *int64 `db:"deleted_at"`
}

package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// WebhookSecret is the team's signing secret.
type WebhookSecret struct {
	Secret string `json:"secret"` // "whsec_…"
	// PreviousSecretExpiresAt is set after a rotation: until then the previous secret
	// signs too.
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty"`
}

// WebhookSecret returns the secret that signs the team's callbacks and webhooks
// (GET /v1/webhook-secret).
func (c *Client) WebhookSecret(ctx context.Context) (*WebhookSecret, error) {
	return c.secret(ctx, http.MethodGet, "/v1/webhook-secret")
}

// RotateWebhookSecret makes a new secret (POST /v1/webhook-secret/rotate). For 24 hours
// both sign, so receivers can switch over.
func (c *Client) RotateWebhookSecret(ctx context.Context) (*WebhookSecret, error) {
	return c.secret(ctx, http.MethodPost, "/v1/webhook-secret/rotate")
}

func (c *Client) secret(ctx context.Context, method, path string) (*WebhookSecret, error) {
	var out WebhookSecret
	if _, err := c.Do(ctx, &Request{Method: method, Path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VaultToken is a Token Vault entry. Its value is never returned.
type VaultToken struct {
	ID        string    `json:"id"` // "tok_…": put it as a header value of a task
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateToken stores value in the Token Vault (POST /v1/tokens). Tasks then name the
// returned id as a header value, and value is put in only when the request is sent.
func (c *Client) CreateToken(ctx context.Context, name, value string) (*VaultToken, error) {
	var out struct {
		Token *VaultToken `json:"token"`
	}
	body := map[string]string{"name": name, "value": value}
	if _, err := c.Do(ctx, &Request{Method: http.MethodPost, Path: "/v1/tokens", Body: body}, &out); err != nil {
		return nil, err
	}
	return out.Token, nil
}

// ListTokens lists the team's vault tokens (GET /v1/tokens).
func (c *Client) ListTokens(ctx context.Context) ([]VaultToken, error) {
	var out struct {
		Tokens []VaultToken `json:"tokens"`
	}
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: "/v1/tokens"}, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// DeleteToken destroys a vault token (DELETE /v1/tokens/:id); tasks that still name it fail
// when they send.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	_, err := c.Do(ctx, &Request{Method: http.MethodDelete, Path: "/v1/tokens/" + url.PathEscape(id)}, nil)
	return err
}

// Provider is a built-in polling template.
type Provider struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Docs       string     `json:"docs"`
	PollConfig PollConfig `json:"pollConfig"`
}

// Providers lists the built-in polling templates (GET /v1/providers, no API key).
func (c *Client) Providers(ctx context.Context) ([]Provider, error) {
	var out struct {
		Providers []Provider `json:"providers"`
	}
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: "/v1/providers", NoAuth: true}, &out); err != nil {
		return nil, err
	}
	return out.Providers, nil
}

package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/signing"
)

// Signature headers asyncqueue sets on every callback and webhook.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" (one v1= per secret
	// during a rotation), keyed with the whole "whsec_…" secret over "<t>.<raw body>".
	SignatureHeader = "X-AsyncQueue-Signature"
	// The Standard Webhooks headers (standardwebhooks.com), keyed with the base64-decoded
	// bytes after "whsec_" over "<id>.<t>.<raw body>".
	WebhookIDHeader        = "Webhook-Id"
	WebhookTimestampHeader = "Webhook-Timestamp"
	WebhookSignatureHeader = "Webhook-Signature"
)

// DefaultTolerance is how far a signature's timestamp may be from now when a verifier is
// given a tolerance <= 0.
const DefaultTolerance = 5 * time.Minute

// Verification errors; test them with errors.Is.
var (
	ErrSignatureMalformed = signing.ErrMalformed // header missing or unparsable
	ErrSignatureExpired   = signing.ErrTimestamp // timestamp outside the tolerance (replay?)
	ErrSignatureMismatch  = signing.ErrNoMatch   // wrong secret, or the body was changed
)

// VerifySignature checks an X-AsyncQueue-Signature header value against the raw request
// body with the team's secret ("whsec_…", from WebhookSecret). It accepts the request when
// any v1= value matches (two are sent during a secret rotation) and the timestamp is within
// tolerance of now (<= 0 means DefaultTolerance, 5 minutes). Comparisons are constant time.
func VerifySignature(secret, header string, body []byte, tolerance time.Duration) error {
	return signing.Verify(secret, header, body, tolerance, time.Now())
}

// VerifyWebhook checks the Standard Webhooks headers of h (webhook-id, webhook-timestamp,
// webhook-signature) against the raw body with the team's secret, with the same rules as
// VerifySignature.
func VerifyWebhook(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	return signing.VerifyStandard(secret, h, body, tolerance, time.Now())
}

// Sign returns the X-AsyncQueue-Signature value asyncqueue would send for body at time t,
// for testing a receiver.
func Sign(secret string, t time.Time, body []byte) string {
	a, _ := signing.Sign([]string{secret}, "", t, body)
	return a
}

// SignHeaders sets on h every signature header asyncqueue would send for body at time t:
// X-AsyncQueue-Signature and the Standard Webhooks headers with message id id (no ".").
// For testing a receiver.
func SignHeaders(h http.Header, secret, id string, t time.Time, body []byte) {
	signing.Headers(h, []string{secret}, id, t, body)
}

// MaxVerifiedBody is the largest body VerifyRequest and VerifyHandler read.
const MaxVerifiedBody = 16 << 20

// VerifyRequest reads r's body (at most MaxVerifiedBody) and checks its signature with
// secret: X-AsyncQueue-Signature when present, the Standard Webhooks headers otherwise. It
// returns the body, and leaves r.Body readable again from the start.
func VerifyRequest(secret string, r *http.Request, tolerance time.Duration) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxVerifiedBody+1))
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > MaxVerifiedBody {
		return nil, fmt.Errorf("body is larger than %d bytes", MaxVerifiedBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if h := r.Header.Get(SignatureHeader); h != "" {
		return body, VerifySignature(secret, h, body, tolerance)
	}
	return body, VerifyWebhook(secret, r.Header, body, tolerance)
}

// VerifyHandler passes to next only the requests whose signature verifies with secret
// (see VerifyRequest, DefaultTolerance); it answers the others 401 without calling next.
// next reads the body as usual.
func VerifyHandler(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := VerifyRequest(secret, r, 0); err != nil {
			status := http.StatusUnauthorized
			if !errors.Is(err, ErrSignatureMalformed) && !errors.Is(err, ErrSignatureExpired) &&
				!errors.Is(err, ErrSignatureMismatch) {
				status = http.StatusBadRequest
			}
			http.Error(w, "asyncqueue signature: "+err.Error(), status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Event is the body of an onCompleteUrl webhook.
type Event struct {
	Event string `json:"event"` // task.completed, task.failed, task.timeout or task.cancelled
	Task  *Task  `json:"task"`
}

// ParseEvent decodes a webhook body. Verify it first.
func ParseEvent(body []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("asyncqueue: decode webhook event: %w", err)
	}
	return &e, nil
}

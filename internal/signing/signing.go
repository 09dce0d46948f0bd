// Package signing signs and verifies callback and webhook bodies (X-AsyncQueue-Signature and Standard Webhooks).
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret from NewSecret.
const SecretPrefix = "whsec_"

// DefaultTolerance is the timestamp tolerance used when a verifier is given
// a tolerance <= 0; it matches the Standard Webhooks libraries.
const DefaultTolerance = 5 * time.Minute

// Header names set by Headers.
const (
	HeaderSignature        = "X-AsyncQueue-Signature"
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// Errors returned by Verify and VerifyStandard.
var (
	ErrMalformed = errors.New("signature headers are missing or malformed")
	ErrTimestamp = errors.New("signature timestamp is outside the allowed tolerance")
	ErrNoMatch   = errors.New("no signature matches the body")
)

// NewSecret returns a new secret: "whsec_" + standard base64 of 32 random bytes.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never returns an error; it crashes the program instead
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// Sign returns the X-AsyncQueue-Signature and webhook-signature values for
// body, with one signature per secret (current first, then the previous one
// during rotation). With no secrets both values are empty.
//
//   - asyncqueueSig: "t=<unix>,v1=<hex>[,v1=<hex>]", each HMAC-SHA256 keyed
//     with the bytes of the whole secret string, over "<unix>.<body>".
//   - webhookSig: "v1,<base64>[ v1,<base64>]", each HMAC-SHA256 keyed with the
//     base64-decoded bytes after "whsec_", over "<id>.<unix>.<body>". A secret
//     that is not valid base64 after the prefix is used as raw bytes instead.
//
// id must be stable across retries and must not contain "."; t is per attempt.
func Sign(secrets []string, id string, t time.Time, body []byte) (asyncqueueSig, webhookSig string) {
	if len(secrets) == 0 {
		return "", ""
	}
	ts := strconv.FormatInt(t.Unix(), 10)
	var a, w strings.Builder
	a.WriteString("t=" + ts)
	for i, s := range secrets {
		a.WriteString(",v1=" + hex.EncodeToString(asyncqueueMAC(s, ts, body)))
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString("v1," + base64.StdEncoding.EncodeToString(standardMAC(s, id, ts, body)))
	}
	return a.String(), w.String()
}

// Headers sets X-AsyncQueue-Signature, webhook-id, webhook-timestamp (unix
// seconds) and webhook-signature on h for body. With no secrets only
// webhook-id and webhook-timestamp are set.
func Headers(h http.Header, secrets []string, id string, t time.Time, body []byte) {
	a, w := Sign(secrets, id, t, body)
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(t.Unix(), 10))
	if a != "" {
		h.Set(HeaderSignature, a)
		h.Set(HeaderWebhookSignature, w)
	}
}

// Verify checks an X-AsyncQueue-Signature header value against body with
// secret. It returns ErrMalformed if the header lacks a t= or v1= field or a
// field is unparsable, ErrTimestamp if t is more than tolerance away from now
// (tolerance <= 0 means DefaultTolerance), and ErrNoMatch if no v1= value
// matches; nil if any does. Comparisons are constant time.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	var (
		ts   string
		sigs [][]byte
	)
	for field := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrMalformed
			}
			sigs = append(sigs, sig)
		default:
			// Unknown schemes are skipped so new ones can be added later.
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformed
	}
	if err := checkTimestamp(ts, tolerance, now); err != nil {
		return err
	}
	want := asyncqueueMAC(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrNoMatch
}

// VerifyStandard checks the Standard Webhooks headers in h (webhook-id,
// webhook-timestamp, webhook-signature) against body with secret, with the
// same errors and tolerance rule as Verify. Signatures of other versions
// (such as v1a) are skipped; ErrMalformed if no v1 signature is present.
func VerifyStandard(secret string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, ts, header := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || header == "" {
		return ErrMalformed
	}
	var sigs [][]byte
	for field := range strings.FieldsSeq(header) {
		version, v, ok := strings.Cut(field, ",")
		if !ok {
			return ErrMalformed
		}
		if version != "v1" {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(sig) != sha256.Size {
			return ErrMalformed
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return ErrMalformed
	}
	if err := checkTimestamp(ts, tolerance, now); err != nil {
		return err
	}
	want := standardMAC(secret, id, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrNoMatch
}

// checkTimestamp parses a decimal unix-seconds string and checks it is within
// tolerance of now.
func checkTimestamp(ts string, tolerance time.Duration, now time.Time) error {
	if ts == "" || ts[0] == '+' || ts[0] == '-' {
		return ErrMalformed
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in seconds so huge timestamps cannot overflow a Duration.
	diff := now.Unix() - sec
	tol := int64(tolerance / time.Second)
	if diff > tol || diff < -tol {
		return ErrTimestamp
	}
	return nil
}

func asyncqueueMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

func standardMAC(secret, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, standardKey(secret))
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// standardKey is the Standard Webhooks HMAC key for secret: the base64
// decoding of what follows "whsec_", or the raw secret if that fails.
func standardKey(secret string) []byte {
	if k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix)); err == nil && len(k) > 0 {
		return k
	}
	return []byte(secret)
}

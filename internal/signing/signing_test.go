package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	now  = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	body = []byte(`{"event":"task.completed","task":{"id":"0194b3c2-0000-7000-8000-000000000000"}}`)
)

func TestNewSecret(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`)
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret()
		if !re.MatchString(s) {
			t.Fatalf("secret %q does not match %v", s, re)
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(k) != 32 {
			t.Fatalf("secret decodes to %d bytes, %v", len(k), err)
		}
		if seen[s] {
			t.Fatal("duplicate secret")
		}
		seen[s] = true
	}
}

// TestKnownAnswer recomputes both schemes here with crypto/hmac, straight
// from the spec's wording.
func TestKnownAnswer(t *testing.T) {
	t.Parallel()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	id := "0194b3c2-0000-7000-8000-000000000000"

	m := hmac.New(sha256.New, []byte(secret)) // whole secret string as key
	m.Write([]byte("1767225600." + string(body)))
	wantA := "t=1767225600,v1=" + hex.EncodeToString(m.Sum(nil))

	m = hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef")) // decoded bytes as key
	m.Write([]byte(id + ".1767225600." + string(body)))
	wantW := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))

	a, w := Sign([]string{secret}, id, now, body)
	if a != wantA {
		t.Errorf("asyncqueue signature\n got %s\nwant %s", a, wantA)
	}
	if w != wantW {
		t.Errorf("webhook signature\n got %s\nwant %s", w, wantW)
	}
}

// TestStandardWebhooksVector is the published Standard Webhooks example.
func TestStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	payload := []byte(`{"test": 2432232314}`)
	if _, w := Sign([]string{secret}, id, ts, payload); w != want {
		t.Fatalf("Sign = %s, want %s", w, want)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", want)
	if err := VerifyStandard(secret, h, payload, 0, ts.Add(time.Minute)); err != nil {
		t.Fatalf("VerifyStandard = %v", err)
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	cur, prev, stranger := NewSecret(), NewSecret(), NewSecret()
	tests := []struct {
		name    string
		signers []string
		verify  string
		want    error
		nSig    int
	}{
		{"single secret", []string{cur}, cur, nil, 1},
		{"rotation, new secret", []string{cur, prev}, cur, nil, 2},
		{"rotation, old secret", []string{cur, prev}, prev, nil, 2},
		{"after rotation, old secret", []string{cur}, prev, ErrNoMatch, 1},
		{"wrong secret", []string{cur, prev}, stranger, ErrNoMatch, 2},
		{"raw (non-base64) secret", []string{"plain text key"}, "plain text key", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			Headers(h, tt.signers, "task-1", now, body)
			if got := h.Get("webhook-id"); got != "task-1" {
				t.Errorf("webhook-id = %q", got)
			}
			if got := h.Get("webhook-timestamp"); got != "1767225600" {
				t.Errorf("webhook-timestamp = %q", got)
			}
			sig := h.Get("X-AsyncQueue-Signature")
			if n := strings.Count(sig, "v1="); n != tt.nSig {
				t.Errorf("%d v1= values in %q, want %d", n, sig, tt.nSig)
			}
			if n := len(strings.Fields(h.Get("webhook-signature"))); n != tt.nSig {
				t.Errorf("%d webhook signatures, want %d", n, tt.nSig)
			}
			if err := Verify(tt.verify, sig, body, time.Minute, now); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
			if err := VerifyStandard(tt.verify, h, body, time.Minute, now); !errors.Is(err, tt.want) {
				t.Errorf("VerifyStandard = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNoSecrets(t *testing.T) {
	t.Parallel()
	if a, w := Sign(nil, "id", now, body); a != "" || w != "" {
		t.Fatalf("Sign(nil) = %q, %q", a, w)
	}
	h := http.Header{}
	Headers(h, nil, "id", now, body)
	if h.Get("X-AsyncQueue-Signature") != "" || h.Get("webhook-signature") != "" || h.Get("webhook-id") != "id" {
		t.Fatalf("headers = %v", h)
	}
}

func TestTampering(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	h := http.Header{}
	Headers(h, []string{secret}, "task-1", now, body)
	sig := h.Get("X-AsyncQueue-Signature")

	flipped := append([]byte(nil), body...)
	flipped[10] ^= 1

	tests := []struct {
		name   string
		mutate func(h http.Header, sig *string, b *[]byte)
		tol    time.Duration
		at     time.Time
		want   error
	}{
		{"untouched", func(http.Header, *string, *[]byte) {}, time.Minute, now, nil},
		{"body byte flipped", func(_ http.Header, _ *string, b *[]byte) { *b = flipped }, time.Minute, now, ErrNoMatch},
		{"body extended", func(_ http.Header, _ *string, b *[]byte) { *b = append(append([]byte(nil), body...), ' ') }, time.Minute, now, ErrNoMatch},
		{"empty body", func(_ http.Header, _ *string, b *[]byte) { *b = nil }, time.Minute, now, ErrNoMatch},
		{"timestamp changed", func(h http.Header, sig *string, _ *[]byte) {
			*sig = strings.Replace(*sig, "t=1767225600", "t=1767225601", 1)
			h.Set("webhook-timestamp", "1767225601")
		}, time.Minute, now, ErrNoMatch},
		{"id changed", func(h http.Header, _ *string, _ *[]byte) { h.Set("webhook-id", "task-2") }, time.Minute, now, errStandardOnly},
		{"too old", func(http.Header, *string, *[]byte) {}, 5 * time.Minute, now.Add(5*time.Minute + time.Second), ErrTimestamp},
		{"at the edge", func(http.Header, *string, *[]byte) {}, 5 * time.Minute, now.Add(5 * time.Minute), nil},
		{"too new", func(http.Header, *string, *[]byte) {}, 5 * time.Minute, now.Add(-5*time.Minute - time.Second), ErrTimestamp},
		{"default tolerance accepts 4m", func(http.Header, *string, *[]byte) {}, 0, now.Add(4 * time.Minute), nil},
		{"default tolerance rejects 6m", func(http.Header, *string, *[]byte) {}, 0, now.Add(6 * time.Minute), ErrTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h2, s2, b2 := h.Clone(), sig, body
			tt.mutate(h2, &s2, &b2)
			wantA, wantS := tt.want, tt.want
			if tt.want == errStandardOnly {
				wantA, wantS = nil, ErrNoMatch
			}
			if err := Verify(secret, s2, b2, tt.tol, tt.at); !errors.Is(err, wantA) {
				t.Errorf("Verify = %v, want %v", err, wantA)
			}
			if err := VerifyStandard(secret, h2, b2, tt.tol, tt.at); !errors.Is(err, wantS) {
				t.Errorf("VerifyStandard = %v, want %v", err, wantS)
			}
		})
	}
}

// errStandardOnly marks a change that only the Standard Webhooks scheme signs.
var errStandardOnly = errors.New("standard only")

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	good, _ := Sign([]string{secret}, "id", now, body)
	v1 := good[strings.Index(good, "v1="):]
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"good", good, nil},
		{"spaces after commas", strings.ReplaceAll(good, ",", ", "), nil},
		{"unknown scheme skipped", good + ",v0=abc", nil},
		{"empty", "", ErrMalformed},
		{"garbage", "garbage", ErrMalformed},
		{"commas only", ",,,", ErrMalformed},
		{"t=abc", "t=abc," + v1, ErrMalformed},
		{"t empty", "t=," + v1, ErrMalformed},
		{"t negative", "t=-1767225600," + v1, ErrMalformed},
		{"t plus sign", "t=+1767225600," + v1, ErrMalformed},
		{"t float", "t=1767225600.5," + v1, ErrMalformed},
		{"t overflow", "t=99999999999999999999," + v1, ErrMalformed},
		{"t huge", "t=9223372036854775807," + v1, ErrTimestamp},
		{"t zero", "t=0," + v1, ErrTimestamp},
		{"missing t", v1, ErrMalformed},
		{"two t", "t=1767225600,t=1767225600," + v1, ErrMalformed},
		{"missing v1", "t=1767225600", ErrMalformed},
		{"v1 not hex", "t=1767225600,v1=zz", ErrMalformed},
		{"v1 short", "t=1767225600,v1=abcd", ErrMalformed},
		{"v1 empty", "t=1767225600,v1=", ErrMalformed},
		{"v1 wrong", "t=1767225600,v1=" + strings.Repeat("00", 32), ErrNoMatch},
		{"wrong then right", "t=1767225600,v1=" + strings.Repeat("00", 32) + "," + v1, nil},
		{"webhook format", "v1,abc", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := Verify(secret, tt.header, body, time.Minute, now); !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

func TestVerifyStandardMalformed(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	_, good := Sign([]string{secret}, "id", now, body)
	tests := []struct {
		name        string
		id, ts, sig string
		want        error
	}{
		{"good", "id", "1767225600", good, nil},
		{"v1a skipped", "id", "1767225600", "v1a,AAAA " + good, nil},
		{"extra spaces", "id", "1767225600", "  " + good + "  ", nil},
		{"missing id", "", "1767225600", good, ErrMalformed},
		{"missing timestamp", "id", "", good, ErrMalformed},
		{"missing signature", "id", "1767225600", "", ErrMalformed},
		{"timestamp abc", "id", "abc", good, ErrMalformed},
		{"timestamp float", "id", "1767225600.0", good, ErrMalformed},
		{"no comma", "id", "1767225600", "garbage", ErrMalformed},
		{"only other versions", "id", "1767225600", "v1a,AAAA v2,BBBB", ErrMalformed},
		{"bad base64", "id", "1767225600", "v1,!!!!", ErrMalformed},
		{"short signature", "id", "1767225600", "v1,AAAA", ErrMalformed},
		{"wrong signature", "id", "1767225600", "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)), ErrNoMatch},
		{"comma-separated instead of spaces", "id", "1767225600", good + "," + good[3:], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.id != "" {
				h.Set("webhook-id", tt.id)
			}
			if tt.ts != "" {
				h.Set("webhook-timestamp", tt.ts)
			}
			if tt.sig != "" {
				h.Set("webhook-signature", tt.sig)
			}
			if err := VerifyStandard(secret, h, body, time.Minute, now); !errors.Is(err, tt.want) {
				t.Errorf("VerifyStandard = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	good, std := Sign([]string{secret}, "id", now, body)
	for _, s := range []string{good, "", "t=abc", "t=1767225600", "t=1767225600,v1=", "v1,AAAA", ",,=,=", good + "," + good, std} {
		f.Add(s, "1767225600", body)
	}
	f.Fuzz(func(t *testing.T, header, ts string, b []byte) {
		err := Verify(secret, header, b, time.Minute, now)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTimestamp) && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Verify returned unexpected error %v", err)
		}
		h := http.Header{}
		h.Set("webhook-id", "id")
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", header)
		err = VerifyStandard(secret, h, b, time.Minute, now)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTimestamp) && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("VerifyStandard returned unexpected error %v", err)
		}
		// What we sign always verifies.
		h2 := http.Header{}
		Headers(h2, []string{secret}, "id", now, b)
		if err := Verify(secret, h2.Get("X-AsyncQueue-Signature"), b, time.Minute, now); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if err := VerifyStandard(secret, h2, b, time.Minute, now); err != nil {
			t.Fatalf("own standard signature rejected: %v", err)
		}
	})
}

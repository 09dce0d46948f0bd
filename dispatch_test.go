package main

// Unit tests of the dispatcher's pure parts: backoff and Retry-After.

import (
	"net/http"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind string
		n    int
		want time.Duration
	}{
		{"exponential", 1, 1 * time.Second},
		{"exponential", 2, 2 * time.Second},
		{"exponential", 3, 4 * time.Second},
		{"exponential", 4, 8 * time.Second},
		{"exponential", 5, 16 * time.Second},
		{"exponential", 10, 512 * time.Second},
		{"linear", 1, 1 * time.Second},
		{"linear", 2, 2 * time.Second},
		{"linear", 3, 3 * time.Second},
		{"linear", 10, 10 * time.Second},
	} {
		if got := Backoff(c.kind, c.n); got != c.want {
			t.Errorf("Backoff(%q, %d) = %v, want %v", c.kind, c.n, got, c.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	res := func(code int, v string) *outbound.Response {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		return &outbound.Response{StatusCode: code, Header: h}
	}
	for _, c := range []struct {
		res  *outbound.Response
		want time.Duration
	}{
		{nil, 0},
		{res(429, ""), 0},
		{res(429, "30"), 30 * time.Second},
		{res(503, " 2 "), 2 * time.Second},
		{res(500, "30"), 0}, // only 429 and 503 ask to wait
		{res(200, "30"), 0},
		{res(429, "-5"), 0},
		{res(429, "999999"), MaxRetryAfter},
		{res(429, now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{res(503, now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{res(503, now.Add(48*time.Hour).Format(http.TimeFormat)), MaxRetryAfter},
		{res(429, "soon"), 0},
	} {
		var v string
		if c.res != nil {
			v = c.res.Header.Get("Retry-After")
		}
		if got := retryAfter(c.res, now); got != c.want {
			t.Errorf("retryAfter(%v, %q) = %v, want %v", c.res != nil && c.res.StatusCode != 0, v, got, c.want)
		}
	}
}

// webhookArmed tells a task finish just ended from every later state of its webhook.
func TestWebhookArmed(t *testing.T) {
	t.Parallel()
	a := &App{}
	now := time.UnixMilli(1_800_000_000_000)
	url := "https://example.com/hook"
	task := &store.Task{OnCompleteURL: &url}
	a.finish(task, store.StatusCompleted, now)
	if !webhookArmed(task) {
		t.Fatal("a task just finished with an onCompleteUrl is not armed")
	}
	relet := *task
	later := now.Add(webhookLease + time.Second).UnixMilli()
	relet.DueAt = &later // a timer took the lease again
	delivered := *task
	st := `{"status":"pending","attempts":1,"lastError":"HTTP 500"}`
	delivered.OnComplete = &st
	none := &store.Task{}
	a.finish(none, store.StatusFailed, now)
	for name, c := range map[string]*store.Task{"lease taken again": &relet, "attempted": &delivered, "no webhook": none} {
		if webhookArmed(c) {
			t.Errorf("%s: armed", name)
		}
	}
}

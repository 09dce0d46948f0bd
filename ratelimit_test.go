package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in     string
		perMin int
		bad    bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"600", 600, false},
		{"600/min", 600, false},
		{" 600 / minute", 600, false},
		{"10/s", 600, false},
		{"36000/h", 600, false},
		{"1/h", 1, false}, // under one a minute rounds up, never to "no limit"
		{"1.5/s", 90, false},
		{"-1", 0, true},
		{"ten", 0, true},
		{"10/day", 0, true},
	} {
		n, err := parseRate(c.in)
		if (err != nil) != c.bad || n != c.perMin {
			t.Errorf("parseRate(%q) = %d, %v; want %d, error %v", c.in, n, err, c.perMin, c.bad)
		}
	}
}

func TestTeamLimiter(t *testing.T) {
	t.Parallel()
	var off *teamLimiter
	if err := off.allow(httptest.NewRecorder(), "a"); err != nil {
		t.Fatalf("no limiter: %v", err)
	}
	l := &teamLimiter{perMin: 2}
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		w := httptest.NewRecorder()
		err := l.allow(w, "a")
		if got := statusOf(err); got != want {
			t.Fatalf("request %d: %d (%v), want %d", i+1, got, err, want)
		}
		if w.Header().Get("X-RateLimit-Limit") != "2" {
			t.Errorf("request %d: headers %v", i+1, w.Header())
		}
		if want == http.StatusTooManyRequests && w.Header().Get("Retry-After") != "30" {
			t.Errorf("refused: Retry-After %q, want 30 (one request per 30 s)", w.Header().Get("Retry-After"))
		}
	}
	if err := l.allow(httptest.NewRecorder(), "b"); err != nil {
		t.Errorf("another team shares the budget: %v", err)
	}
}

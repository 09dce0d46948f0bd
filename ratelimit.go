package main

// Per-team limits on the API: the optional request rate (--rate-limit) and the count of
// things a team holds open at once (long polls).

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// teamLimiter is the optional per-team API rate limit.
type teamLimiter struct {
	perMin int
	mu     sync.Mutex
	teams  map[string]*rate.Limiter
}

// parseRate reads "600", "600/min", "10/s" or "36000/h" as requests per minute.
func parseRate(s string) (int, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("rate %q: want a number of requests such as 600/min, 10/s or 36000/h", s)
	}
	switch strings.TrimSpace(unit) {
	case "", "m", "min", "minute":
	case "s", "sec", "second":
		n *= 60
	case "h", "hour":
		n /= 60
	default:
		return 0, fmt.Errorf("rate %q: the unit must be /s, /min or /h", s)
	}
	if n > 0 && n < 1 {
		n = 1
	}
	return int(n), nil
}

func (l *teamLimiter) limiter(team string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.teams == nil {
		l.teams = map[string]*rate.Limiter{}
	}
	lim, ok := l.teams[team]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(float64(l.perMin)/60), l.perMin)
		l.teams[team] = lim
	}
	return lim
}

// allow applies the team's budget and sets the X-RateLimit-* headers.
func (l *teamLimiter) allow(w http.ResponseWriter, team string) error {
	if l == nil || l.perMin <= 0 {
		return nil
	}
	lim := l.limiter(team)
	now := time.Now()
	ok := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	perSec := float64(l.perMin) / 60
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.perMin))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(0, int(tokens))))
	reset := (float64(l.perMin) - tokens) / perSec // seconds until the bucket is full again
	h.Set("X-RateLimit-Reset", strconv.Itoa(int(reset+0.999)))
	if ok {
		return nil
	}
	retry := max(1, int((1-tokens)/perSec+0.999))
	h.Set("Retry-After", strconv.Itoa(retry))
	return errorf(http.StatusTooManyRequests, "Rate limit of %d requests per minute for this team exceeded; retry in %d s", l.perMin, retry)
}

// teamCounter counts something each team holds open (long polls), against a cap.
type teamCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one for team unless it holds max already (max 0: no limit); release gives it back.
func (c *teamCounter) acquire(team string, max int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.n[team] >= max {
		return nil, false
	}
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[team]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n[team]--; c.n[team] == 0 {
			delete(c.n, team)
		}
	}, true
}

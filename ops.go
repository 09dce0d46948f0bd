package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// BackupCmd copies the database consistently while the server runs.
type BackupCmd struct {
	DBFlag `embed:""`
	To     string `help:"File to write the copy to (must not exist unless --force)." required:"" type:"path"`
	Force  bool   `help:"Overwrite --to if it exists."`
}

// Run writes the copy with VACUUM INTO, which reads one snapshot: every task committed
// before the backup started is in it, and nothing half-written is.
func (c *BackupCmd) Run(ctx context.Context, cli *CLI) error {
	if _, err := os.Stat(cli.DB); err != nil {
		return fmt.Errorf("database %s: %w", cli.DB, err)
	}
	if _, err := os.Stat(c.To); err == nil {
		if !c.Force {
			return fmt.Errorf("%s exists; pass --force to overwrite it", c.To)
		}
		if err := os.Remove(c.To); err != nil {
			return err
		}
	}
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	tasks, err := st.Backup(ctx, c.To)
	if err != nil {
		return err
	}
	if err := os.Chmod(c.To, 0o600); err != nil {
		return err
	}
	fi, _ := os.Stat(c.To)
	fmt.Fprintf(os.Stderr, "backed up %s to %s: %d tasks, %d bytes, %s, integrity ok\n",
		cli.DB, c.To, tasks, fi.Size(), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "keep %s.vault-key (or your --vault-key) with it: vault tokens cannot be read without it\n", cli.DB)
	return nil
}

// pruneLoop deletes finished tasks older than the retention window, a few hundred per
// write so that the API never waits long behind it.
func (d *dispatcher) pruneLoop(retention time.Duration) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(min(time.Minute, max(retention/2, time.Second)))
	defer t.Stop()
	for {
		if n, err := d.prune(time.Now().Add(-retention), pruneBatch, 10_000); err != nil && d.runCtx.Err() == nil {
			d.a.log.Error("prune finished tasks", "err", err)
		} else if n > 0 {
			d.a.log.Info("pruned finished tasks", "tasks", n, "older_than", retention)
		}
		select {
		case <-d.runCtx.Done():
			return
		case <-t.C:
		}
	}
}

const pruneBatch = 500

// prune deletes up to limit terminal tasks that finished before cutoff (and whose webhook is
// settled), batch at a time; it returns how many went.
func (d *dispatcher) prune(cutoff time.Time, batch, limit int) (int, error) {
	teams, err := d.a.store.Teams(d.runCtx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, team := range teams {
		for total < limit {
			var n int
			err := d.a.store.Write(d.runCtx, func(tx store.Tx) (err error) {
				n, err = tx.PruneTasks(team.ID, cutoff.UnixMilli(), batch)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
			if n < batch {
				break
			}
			time.Sleep(10 * time.Millisecond) // let other writes through
		}
	}
	return total, nil
}

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

// storageError maps the store's "full" and "unavailable" errors to answers a client can
// act on; the failed write was rolled back, so nothing partial was stored.
func storageError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrFull):
		return &Error{http.StatusInsufficientStorage, "The database is full (disk space or --max-db-size); nothing was stored. Free space and retry"}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, "The database could not write to disk; nothing was stored. Retry later"}
	}
	return nil
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

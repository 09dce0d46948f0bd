package main

// The admin page's live updates: one Server-Sent Events stream per open page, capped
// per team, that tells the page when to refresh itself.

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// broadcast wakes every waiter each time it fires.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// openStream counts a stream of team against AdminStreamsPerTeam; false when it is full.
func (s *admin) openStream(team string) bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams[team] >= AdminStreamsPerTeam {
		return false
	}
	if s.streams == nil {
		s.streams = map[string]int{}
	}
	s.streams[team]++
	return true
}

func (s *admin) closeStream(team string) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams[team]--; s.streams[team] <= 0 {
		delete(s.streams, team)
	}
}

// events is GET /events, a Server-Sent Events stream that says "change" when the page that
// opened it should refresh itself:
//   - watch=id,id,…: one of these tasks changed (the hub, after every commit);
//   - new=1&top=id: the team has a task newer than top (checked every second);
//   - counts=status,…: the team's count of tasks in one of these statuses changed (a task
//     moved into or out of a filtered list; "all": of any status);
//   - every=N: at least every N seconds (for counts that any task can move).
//
// A team has at most AdminStreamsPerTeam streams at once. The stream says "logout" and
// ends as soon as its session ends (logout, or its API key revoked).
func (s *admin) events(w http.ResponseWriter, r *http.Request, sess *session) error {
	if !s.openStream(sess.TeamID) {
		s.a.log.Warn("admin: too many live-update streams", "team", sess.TeamID, "limit", AdminStreamsPerTeam)
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("Too many open admin pages for this team (at most %d live-update streams); close some.",
			AdminStreamsPerTeam), http.StatusTooManyRequests)
		return nil
	}
	defer s.closeStream(sess.TeamID)
	q := r.URL.Query()
	var watches []<-chan struct{}
	if ws := q.Get("watch"); ws != "" {
		var ids []string
		for i, v := range strings.Split(ws, ",") {
			if i == 2*AdminPageSize {
				break
			}
			if id, err := uuid.Parse(v); err == nil {
				ids = append(ids, id.String())
			}
		}
		// Only the team's own tasks: another team's would tell when its tasks change.
		ids, err := s.a.store.TeamTaskIDs(r.Context(), sess.TeamID, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			ch, stop := s.a.hub.watch(id)
			defer stop()
			watches = append(watches, ch)
		}
	}
	checkNew, top := q.Get("new") == "1", q.Get("top")
	var countOf []string // statuses whose counts to follow; "all" for every status
	if c := q.Get("counts"); c != "" {
		for _, st := range strings.Split(c, ",") {
			if st == "all" || slices.Contains(allStatuses, st) {
				countOf = append(countOf, st)
			}
		}
	}
	var lastCounts string
	countsNow := func() string {
		if len(countOf) == 0 {
			return ""
		}
		c, err := s.a.store.StatusCounts(r.Context(), sess.TeamID)
		if err != nil {
			return lastCounts // nothing new to tell
		}
		var b strings.Builder
		for _, st := range allStatuses {
			if countOf[0] == "all" || slices.Contains(countOf, st) {
				fmt.Fprintf(&b, "%d,", c[st])
			}
		}
		return b.String()
	}
	lastCounts = countsNow()
	var every time.Duration
	if n, err := strconv.Atoi(q.Get("every")); err == nil && n > 0 {
		every = time.Duration(max(n, 2)) * time.Second
	}

	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for ordinary requests; a stream lives longer.
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(msg string) error {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("retry: 3000\n: connected\n\n"); err != nil {
		return nil
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	start, lastSent, lastChange := time.Now(), time.Now(), time.Now()
	ended := s.sessionsEnded.wait()
	for i := 1; ; i++ {
		checkSession := i%20 == 0 // every 10 s: a key revoked by another process
		select {
		case <-r.Context().Done():
			return nil
		case <-s.a.hub.done:
			return nil
		case <-ended:
			ended, checkSession = s.sessionsEnded.wait(), true
		case <-tick.C:
		}
		if checkSession {
			if ss, err := s.session(r); err != nil || ss == nil {
				send("event: logout\ndata: {}\n\n")
				return nil
			}
		}
		changed := false
		for _, ch := range watches {
			select {
			case <-ch:
				changed = true
			default:
			}
		}
		if checkNew && i%2 == 0 {
			newest, err := s.a.store.NewestTaskID(r.Context(), sess.TeamID)
			if err != nil {
				return nil
			}
			if newest != top {
				top, changed = newest, true
			}
		}
		if c := countsNow(); c != lastCounts {
			lastCounts, changed = c, true
		}
		if every > 0 && time.Since(lastChange) >= every {
			changed = true
		}
		var err error
		switch {
		case changed:
			err = send("event: change\ndata: {}\n\n")
			lastSent, lastChange = time.Now(), time.Now()
		case time.Since(lastSent) > 15*time.Second:
			err = send(": ping\n\n")
			lastSent = time.Now()
		}
		if err != nil || time.Since(start) > sseLifetime {
			return nil
		}
	}
}

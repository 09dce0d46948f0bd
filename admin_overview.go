package main

// The admin page's overview: counts by status, the oldest pending task, the waits that
// end soonest and the chart of the last hour.

import (
	"net/http"
	"net/url"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

type statusCount struct {
	Status string
	N      int
}

type overviewView struct {
	Counts     []statusCount
	Total      int
	Pending    int
	Processing int
	Delayed    int
	Waiting    int
	Oldest     *store.TaskRow
	Expiring   []store.TaskRow
	Chart      chart
}

func (s *admin) overview(w http.ResponseWriter, r *http.Request, sess *session) error {
	ctx := r.Context()
	counts, err := s.a.store.StatusCounts(ctx, sess.TeamID)
	if err != nil {
		return err
	}
	n := func(st string) int { return int(counts[st]) }
	ov := overviewView{Pending: n(store.StatusPending), Processing: n(store.StatusProcessing),
		Delayed: n(store.StatusDelayed), Waiting: n(store.StatusWaiting)}
	for _, st := range allStatuses {
		ov.Counts = append(ov.Counts, statusCount{st, n(st)})
		ov.Total += n(st)
	}
	if ov.Oldest, err = s.a.store.OldestPending(ctx, sess.TeamID); err != nil {
		return err
	}
	if ov.Expiring, err = s.a.store.ExpiringSoonest(ctx, sess.TeamID, 5); err != nil {
		return err
	}
	now := time.Now()
	nowMin := now.Unix() / 60
	per, err := s.a.store.PerMinute(ctx, sess.TeamID, (nowMin-59)*60_000)
	if err != nil {
		return err
	}
	ov.Chart = buildChart(per, nowMin)
	newest, err := s.a.store.NewestTaskID(ctx, sess.TeamID)
	if err != nil {
		return err
	}
	live := url.Values{"top": {newest}, "new": {"1"}, "every": {"5"}}
	s.render(w, r, http.StatusOK, "overview", &view{Title: "Overview", Nav: "overview", Sess: sess,
		Live: "/events?" + live.Encode(), Data: ov})
	return nil
}

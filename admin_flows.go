package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The admin page's Flows view (SPEC §10): each flow's calls in flight, pending tasks,
// limits, pause and last error, with pause, resume and edit.

type flowsView struct {
	Flows   []flowRow
	Default int // the server's --flow-parallelism
	Key     string
}

type flowRow struct {
	FlowJSON
	PausedUntilMS *int64
	LastErrorMS   *int64
	Rate          string
}

// flowDone are the notices after a flow action (by ?done=).
var flowDone = map[string]string{
	"pause":  "Flow paused: its tasks wait, pending, until you resume it.",
	"resume": "Flow resumed.",
	"set":    "Flow limits saved.",
}

// flowsPage is GET /flows.
func (s *admin) flowsPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showFlows(w, r, sess, http.StatusOK, flowDone[r.URL.Query().Get("done")], "", "")
}

func (s *admin) showFlows(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, key string) error {
	now := time.Now()
	v := flowsView{Default: s.a.cfg.FlowParallelism, Key: key}
	for _, st := range s.a.sched.stats(sess.TeamID) {
		row := flowRow{FlowJSON: flowJSON(st, now)}
		if now.Before(st.Settings.PausedUntil) {
			ms := st.Settings.PausedUntil.UnixMilli()
			row.PausedUntilMS = &ms
		}
		if st.LastError != "" {
			ms := st.LastErrorAt.UnixMilli()
			row.LastErrorMS = &ms
		}
		if row.RatePerSecond != nil {
			row.Rate = strconv.FormatFloat(*row.RatePerSecond, 'g', -1, 64)
		}
		v.Flows = append(v.Flows, row)
	}
	s.render(w, r, status, "flows", &view{Title: "Flows", Nav: "flows", Sess: sess, Flash: flash, Err: errMsg, Data: v})
	return nil
}

// flowAction is POST /flows: action pause, resume or set (parallelism, rate; empty means
// the default) of the flow named by the form's key.
func (s *admin) flowAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	key, err := checkFlowKey("Flow key", strings.TrimSpace(r.PostFormValue("key")))
	if err != nil {
		return s.flowFailed(w, r, sess, err, "")
	}
	var change func(*store.Flow)
	action := r.PostFormValue("action")
	switch action {
	case "pause":
		change = func(f *store.Flow) { f.Paused = true }
	case "resume":
		change = func(f *store.Flow) { f.Paused, f.PausedUntil = false, nil }
	case "set":
		num := func(name string) (*float64, error) {
			v := strings.TrimSpace(r.PostFormValue(name))
			if v == "" {
				return nil, nil
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, badRequest("%s must be a number, not %q", name, v)
			}
			return &f, nil
		}
		p, err := num("parallelism")
		if err != nil {
			return s.flowFailed(w, r, sess, err, key)
		}
		rate, err := num("ratePerSecond")
		if err != nil {
			return s.flowFailed(w, r, sess, err, key)
		}
		par, rps, err := flowLimits(p, rate)
		if err != nil {
			return s.flowFailed(w, r, sess, err, key)
		}
		change = func(f *store.Flow) { f.Parallelism, f.RatePerSecond = par, rps }
	default:
		return s.flowFailed(w, r, sess, badRequest("Unknown flow action %q", action), key)
	}
	if _, err := s.a.updateFlow(r.Context(), sess.TeamID, key, change); err != nil {
		return s.flowFailed(w, r, sess, err, key)
	}
	http.Redirect(w, r, "/flows?done="+action, http.StatusSeeOther)
	return nil
}

// flowFailed shows the Flows page again with a user's mistake, or fails as any page does.
func (s *admin) flowFailed(w http.ResponseWriter, r *http.Request, sess *session, err error, key string) error {
	var e *Error
	if errors.As(err, &e) && e.Status < 500 {
		return s.showFlows(w, r, sess, e.Status, "", e.Message, key)
	}
	return err
}

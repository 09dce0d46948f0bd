package main

// The admin page's schedules: a list (next run, last run and how its task went), a detail
// page (the next five runs, the recent tasks) and pause, resume, trigger and delete, each
// confirmed on a second step. Actions call the same service functions as the API's routes
// (schedules.go), as the task actions do.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// scheduleDone are the notices after a schedule action (by ?done=), fixed texts.
var scheduleDone = map[string]string{
	"pause":   "Schedule paused: no runs until it is resumed.",
	"resume":  "Schedule resumed: it runs again from its next run.",
	"trigger": "Schedule run now: its task is below.",
	"delete":  "Schedule deleted. The tasks it made stay.",
}

// scheduleConfirm are the questions of the confirmation step, by action.
var scheduleConfirm = map[string]string{
	"pause":   "Pause this schedule? It makes no runs until resumed.",
	"resume":  "Resume this schedule? It runs again from its next run after now; runs missed while paused are not made up.",
	"trigger": "Run this schedule once now? Its own runs go on as before.",
	"delete":  "Delete this schedule? It makes no more runs; the tasks it made stay.",
}

type scheduleRow struct {
	S          *store.Schedule
	When       string
	LastStatus string // the status of the last run's task, if it still exists
}

func scheduleWhenText(s *store.Schedule) string {
	if s.Cron != nil {
		return "cron " + *s.Cron + " (" + s.Timezone + ")"
	}
	return "every " + valueOrEmpty(s.Every)
}

// scheduleRows adds to each schedule the status of its last run's task.
func (s *admin) scheduleRows(r *http.Request, ss []store.Schedule) ([]scheduleRow, error) {
	var ids []string
	for _, sc := range ss {
		if sc.LastTaskID != nil {
			ids = append(ids, *sc.LastTaskID)
		}
	}
	ts, err := s.a.store.TasksByID(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	status := map[string]string{}
	for _, t := range ts {
		status[t.ID] = s.a.sched.view(t).Status
	}
	rows := make([]scheduleRow, len(ss))
	for i := range ss {
		rows[i] = scheduleRow{S: &ss[i], When: scheduleWhenText(&ss[i]), LastStatus: status[valueOrEmpty(ss[i].LastTaskID)]}
	}
	return rows, nil
}

type schedulesView struct {
	Rows  []scheduleRow
	Total int
}

// scheduleList is GET /schedules.
func (s *admin) scheduleList(w http.ResponseWriter, r *http.Request, sess *session) error {
	ss, total, err := s.a.store.Schedules(r.Context(), sess.TeamID, 100, 0)
	if err != nil {
		return err
	}
	rows, err := s.scheduleRows(r, ss)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "schedules", &view{Title: "Schedules", Nav: "schedules", Sess: sess,
		Flash: scheduleDone[r.URL.Query().Get("done")], Data: schedulesView{Rows: rows, Total: total}})
	return nil
}

type scheduleView struct {
	scheduleRow
	Task     string // the create body, indented
	Next     []int64
	Tasks    []store.Task
	Confirm  string // the action awaiting confirmation
	Question string
}

// parseScheduleID accepts only the shape of a schedule id; anything else is not found.
func parseScheduleID(id string) (string, error) {
	if !isScheduleID(id) {
		return "", errScheduleNotFound
	}
	if _, err := parseTaskID(strings.TrimPrefix(id, scheduleIDPrefix)); err != nil {
		return "", errScheduleNotFound
	}
	return id, nil
}

// scheduleDetail is GET /schedules/{id}; ?confirm=action asks to confirm an action.
func (s *admin) scheduleDetail(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showSchedule(w, r, sess, http.StatusOK, scheduleDone[r.URL.Query().Get("done")], "", r.URL.Query().Get("confirm"))
}

func (s *admin) showSchedule(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, confirm string) error {
	id, err := parseScheduleID(r.PathValue("sid"))
	if err != nil {
		return err
	}
	sc, err := s.a.store.Schedule(r.Context(), id)
	if store.IsNotFound(err) || (err == nil && sc.TeamID != sess.TeamID) {
		return errScheduleNotFound
	} else if err != nil {
		return err
	}
	rows, err := s.scheduleRows(r, []store.Schedule{*sc})
	if err != nil {
		return err
	}
	v := scheduleView{scheduleRow: rows[0], Task: sc.Task}
	if b, ok := prettyJSON(sc.Task); ok {
		v.Task = b
	}
	if spec, err := specOf(sc); err == nil && !sc.Paused {
		from := time.Now()
		if sc.NextRunAt != nil {
			// The first is the stored next run (it may be a catch-up due now).
			v.Next = append(v.Next, *sc.NextRunAt)
			from = time.UnixMilli(*sc.NextRunAt)
		}
		for _, t := range spec.Upcoming(from, 5-len(v.Next)) {
			v.Next = append(v.Next, t.UnixMilli())
		}
	}
	tasks, _, err := s.a.store.List(r.Context(), store.ListFilter{TeamID: sess.TeamID, ScheduleID: sc.ID, Limit: 20})
	if err != nil {
		return err
	}
	for _, lt := range tasks {
		v.Tasks = append(v.Tasks, lt.Task)
	}
	if q, ok := scheduleConfirm[confirm]; ok {
		v.Confirm, v.Question = confirm, q
	}
	s.render(w, r, status, "schedule", &view{Title: "Schedule " + sc.ID, Nav: "schedules", Sess: sess,
		Flash: flash, Err: errMsg, Data: v})
	return nil
}

// scheduleAction is POST /schedules/{id}/{action}, confirmed (confirm=yes) on the detail
// page first; it calls the same function as the API's route for the action.
func (s *admin) scheduleAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := parseScheduleID(r.PathValue("sid"))
	if err != nil {
		return err
	}
	action := r.PathValue("action")
	var act func(ctx context.Context, sc *store.Schedule) error
	switch action {
	case "pause":
		act = func(ctx context.Context, sc *store.Schedule) (err error) {
			_, err = s.a.pauseTeamSchedule(ctx, sc)
			return err
		}
	case "resume":
		act = func(ctx context.Context, sc *store.Schedule) (err error) {
			_, err = s.a.resumeTeamSchedule(ctx, sc)
			return err
		}
	case "trigger":
		act = func(ctx context.Context, sc *store.Schedule) (err error) {
			_, err = s.a.triggerTeamSchedule(ctx, sc)
			return err
		}
	case "delete":
		act = s.a.deleteTeamSchedule
	default:
		return errorf(http.StatusNotFound, "There is no action %q", action)
	}
	if r.PostFormValue("confirm") != "yes" {
		http.Redirect(w, r, "/schedules/"+id+"?confirm="+action, http.StatusSeeOther)
		return nil
	}
	sc, err := s.a.teamSchedule(r.Context(), id, sess.TeamID)
	if err == nil {
		err = act(r.Context(), sc)
	}
	if err != nil {
		e := clientError(err)
		switch {
		case e == nil:
			return err
		case e.Status == http.StatusNotFound:
			return errScheduleNotFound
		}
		return s.showSchedule(w, r, sess, e.Status, "", e.Message, "")
	}
	if action == "delete" {
		http.Redirect(w, r, "/schedules?done=delete", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/schedules/"+id+"?done="+action, http.StatusSeeOther)
	return nil
}

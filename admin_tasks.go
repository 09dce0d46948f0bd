package main

// The admin page's tasks: the filtered list, bulk cancel and retry, the detail page and
// the actions on one task.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/google/uuid"
)

type listView struct {
	Rows      []store.TaskRow
	Status    string          // the one status filtered on, if just one
	Picked    map[string]bool // the statuses filtered on
	Several   bool            // more than one status
	Q         string
	From, To  string // the created-time range, as the form's datetime-local values (UTC)
	Filtered  bool
	Query     url.Values // the filter, for links and the bulk form
	Statuses  []string
	First     bool
	Newer     string
	Older     string
	Newest    string
	ScannedTo string
	CanCancel bool // a bulk cancel or retry of the filtered set makes sense
	CanRetry  bool
}

// dateTimeLocal is the format of an <input type="datetime-local">; the page reads it as UTC.
const dateTimeLocal = "2006-01-02T15:04"

// listFilter reads the task list's filter from q: status (repeated or comma-separated),
// q (search), from and to (created time, UTC).
func listFilter(q url.Values, teamID string) (store.PageFilter, listView, error) {
	f := store.PageFilter{TeamID: teamID, Limit: AdminPageSize}
	lv := listView{Statuses: allStatuses, Picked: map[string]bool{}, Query: url.Values{}}
	var picked []string
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			if st = strings.TrimSpace(st); st == "" || slices.Contains(picked, st) {
				continue
			}
			if !slices.Contains(allStatuses, st) {
				return f, lv, errorf(http.StatusBadRequest, "Unknown status %q", st)
			}
			picked = append(picked, st)
			lv.Picked[st] = true
		}
	}
	switch len(picked) {
	case 0:
	case 1:
		f.Status, lv.Status = picked[0], picked[0]
	default:
		f.Statuses, lv.Several = picked, true
	}
	if len(picked) > 0 {
		lv.Query.Set("status", strings.Join(picked, ","))
	}
	if search := strings.TrimSpace(q.Get("q")); search != "" {
		if len(search) > maxSearch {
			return f, lv, errorf(http.StatusBadRequest, "The search text is longer than %d characters", maxSearch)
		}
		lv.Q = search
		lv.Query.Set("q", search)
		if id, err := uuid.Parse(search); err == nil {
			f.Search, f.SearchIsID = id.String(), true
		} else {
			f.Search = search
		}
	}
	for _, p := range []struct {
		name string
		ms   *int64
		text *string
	}{{"from", &f.CreatedFrom, &lv.From}, {"to", &f.CreatedTo, &lv.To}} {
		v := strings.TrimSpace(q.Get(p.name))
		if v == "" {
			continue
		}
		t, err := time.Parse(dateTimeLocal, v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, lv, errorf(http.StatusBadRequest, "%s must be a date and time such as 2025-01-31T14:30", p.name)
			}
		}
		*p.ms, *p.text = t.UnixMilli(), t.UTC().Format(dateTimeLocal)
		lv.Query.Set(p.name, *p.text)
	}
	if f.CreatedFrom > 0 && f.CreatedTo > 0 && f.CreatedTo <= f.CreatedFrom {
		return f, lv, errorf(http.StatusBadRequest, "to must be later than from")
	}
	lv.Filtered = len(lv.Query) > 0
	for _, st := range picked {
		lv.CanCancel = lv.CanCancel || cancellable(st)
		lv.CanRetry = lv.CanRetry || retryable(st)
	}
	return f, lv, nil
}

func cancellable(status string) bool {
	switch status {
	case store.StatusPending, store.StatusDelayed, store.StatusWaiting, store.StatusPolling:
		return true
	}
	return false
}

func retryable(status string) bool {
	switch status {
	case store.StatusFailed, store.StatusTimeout, store.StatusCancelled:
		return true
	}
	return false
}

func (s *admin) taskList(w http.ResponseWriter, r *http.Request, sess *session) error {
	q := r.URL.Query()
	f, lv, err := listFilter(q, sess.TeamID)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"before", &f.Before}, {"after", &f.After}} {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				return errorf(http.StatusBadRequest, "%s must be a task id", p.name)
			}
			*p.dst = id.String()
		}
	}
	page, err := s.a.store.TaskPage(r.Context(), f)
	if err != nil {
		return err
	}
	if f.After != "" && !page.More {
		// Paging back reached the newest tasks: show the first page, which is live.
		f.After = ""
		if page, err = s.a.store.TaskPage(r.Context(), f); err != nil {
			return err
		}
	}
	lv.Rows = page.Rows
	lv.First = f.Before == "" && f.After == ""
	link := func(k, v string) string {
		u := cloneQuery(lv.Query)
		if k != "" {
			u.Set(k, v)
		}
		if len(u) == 0 {
			return "/tasks"
		}
		return "/tasks?" + u.Encode()
	}
	if !lv.First {
		lv.Newest = link("", "")
	}
	if n := len(page.Rows); n > 0 {
		if page.More || f.After != "" {
			lv.Older = link("before", page.Rows[n-1].ID)
		}
		if !lv.First {
			lv.Newer = link("after", page.Rows[0].ID)
		}
	}
	if page.ScannedTo != "" {
		lv.ScannedTo = link("before", page.ScannedTo)
	}

	live := url.Values{}
	ids := make([]string, len(page.Rows))
	for i, t := range page.Rows {
		ids[i] = t.ID
	}
	if len(ids) > 0 {
		live.Set("watch", strings.Join(ids, ","))
	}
	if lv.First && lv.Filtered {
		// A task can move into the filter at any time: follow the counts it would change.
		live.Set("counts", cmp.Or(lv.Query.Get("status"), "all"))
	}
	if lv.First {
		newest, err := s.a.store.NewestTaskID(r.Context(), sess.TeamID)
		if err != nil {
			return err
		}
		live.Set("top", newest)
		live.Set("new", "1")
		live.Set("every", "15")
	}
	s.render(w, r, http.StatusOK, "tasks", &view{Title: "Tasks", Nav: "tasks", Sess: sess,
		Flash: bulkFlash(s, sess, q.Get("done")), Live: "/events?" + live.Encode(), Data: lv})
	return nil
}

func cloneQuery(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// BulkMax is how many tasks one bulk action on the task list acts on at most.
const BulkMax = 1000

// bulkView is the confirmation page of a bulk action.
type bulkView struct {
	Action   string // cancel or retry
	N        int    // tasks it would act on now
	More     bool   // there are more than BulkMax
	Query    url.Values
	Describe string // the filter, in words
	Back     string
}

// bulkAction is POST /tasks/bulk: cancel or retry every task of the list's filter (only a
// filter on status, search or time; at most BulkMax). Without confirm=yes it shows what it
// would do and asks; with it, it acts through the API's own service functions, task by
// task, and redirects to the list with a notice of what was done.
func (s *admin) bulkAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	action := r.PostFormValue("action")
	var applies func(string) bool
	var act func(ctx context.Context, team, id string) error
	switch action {
	case "cancel":
		applies = cancellable
		act = func(ctx context.Context, team, id string) error {
			_, err := s.a.cancelTeamTask(ctx, team, id)
			return err
		}
	case "retry":
		applies = retryable
		act = func(ctx context.Context, team, id string) error {
			_, _, err := s.a.retryTeamTask(ctx, team, id)
			return err
		}
	default:
		return errorf(http.StatusBadRequest, "There is no bulk action %q", action)
	}
	f, lv, err := listFilter(r.PostForm, sess.TeamID)
	if err != nil {
		return err
	}
	if !lv.Filtered {
		return errorf(http.StatusBadRequest, "A bulk action needs a filter (status, search or time).")
	}
	// Only the statuses the action applies to.
	var sts []string
	if f.Status != "" {
		sts = []string{f.Status}
	} else if len(f.Statuses) > 0 {
		sts = f.Statuses
	} else {
		sts = allStatuses
	}
	sts = slices.DeleteFunc(slices.Clone(sts), func(st string) bool { return !applies(st) })
	if len(sts) == 0 {
		return errorf(http.StatusBadRequest, "No task with these statuses can be %s.", map[string]string{"cancel": "cancelled", "retry": "retried"}[action])
	}
	f.Status, f.Statuses = "", sts
	if len(sts) == 1 {
		f.Status, f.Statuses = sts[0], nil
	}
	var ids []string
	more := false
	f.Limit = 200
	for {
		page, err := s.a.store.TaskPage(r.Context(), f)
		if err != nil {
			return err
		}
		for _, t := range page.Rows {
			if len(ids) == BulkMax {
				more = true
				break
			}
			ids = append(ids, t.ID)
		}
		next := page.ScannedTo
		if page.More && len(page.Rows) > 0 {
			next = page.Rows[len(page.Rows)-1].ID
		}
		if more || next == "" {
			break
		}
		f.Before = next
	}
	back := "/tasks"
	if len(lv.Query) > 0 {
		back += "?" + lv.Query.Encode()
	}
	if r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "bulk", &view{Title: "Confirm bulk " + action, Nav: "tasks", Sess: sess,
			Data: bulkView{Action: action, N: len(ids), More: more, Query: lv.Query, Describe: describeFilter(lv, sts), Back: back}})
		return nil
	}
	done, refused := 0, 0
	for _, id := range ids {
		err := act(r.Context(), sess.TeamID, id)
		switch {
		case err == nil:
			done++
		case clientError(err) != nil:
			refused++ // it changed in the meantime
		default:
			return err
		}
	}
	s.a.log.Info("admin: bulk action", "team", sess.TeamID, "action", action, "done", done, "refused", refused, "by", sess.KeyPrefix)
	past := map[string]string{"cancel": "cancelled", "retry": "queued to run again"}[action]
	msg := fmt.Sprintf("%d task%s %s.", done, plural(done), past)
	if refused > 0 {
		msg += fmt.Sprintf(" %d had changed in the meantime and were left as they are.", refused)
	}
	s.reveals.put(sess, "bulk", msg, "")
	q := cloneQuery(lv.Query)
	q.Set("done", "bulk")
	http.Redirect(w, r, "/tasks?"+q.Encode(), http.StatusSeeOther)
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// bulkFlash is the notice left by a bulk action (numbers only, made here).
func bulkFlash(s *admin, sess *session, done string) string {
	if done != "bulk" {
		return ""
	}
	msg, _ := s.reveals.take(sess, "bulk")
	return msg
}

// describeFilter says in words which tasks a filter selects.
func describeFilter(lv listView, sts []string) string {
	parts := []string{"status " + strings.Join(sts, " or ")}
	if lv.Q != "" {
		parts = append(parts, fmt.Sprintf("matching “%s”", lv.Q))
	}
	if lv.From != "" {
		parts = append(parts, "created from "+strings.Replace(lv.From, "T", " ", 1)+" UTC")
	}
	if lv.To != "" {
		parts = append(parts, "created before "+strings.Replace(lv.To, "T", " ", 1)+" UTC")
	}
	return strings.Join(parts, ", ")
}

func parseTaskID(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != strings.ToLower(s) {
		return "", errorf(http.StatusNotFound, "Task not found")
	}
	return id.String(), nil
}

func (s *admin) taskDetail(w http.ResponseWriter, r *http.Request, sess *session) error {
	done := r.URL.Query().Get("done")
	var token string
	if done == "retry" {
		token, _ = s.reveals.take(sess, "token:"+r.PathValue("id"))
	}
	return s.showTask(w, r, sess, http.StatusOK, doneMessages[done], "", token)
}

func (s *admin) showTask(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, token string) error {
	return s.showTaskTyped(w, r, sess, status, flash, errMsg, token, "")
}

// showTaskTyped is showTask with typed, the Approve box's text, put back after an error.
func (s *admin) showTaskTyped(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, token, typed string) error {
	id, err := parseTaskID(r.PathValue("id"))
	if err != nil {
		return err
	}
	t, err := s.a.store.Task(r.Context(), id)
	if store.IsNotFound(err) || (err == nil && t.TeamID != sess.TeamID) {
		return errorf(http.StatusNotFound, "Task not found")
	} else if err != nil {
		return err
	}
	t = s.a.sched.view(t) // a call without a written claim shows as processing
	as, err := s.a.store.Attempts(r.Context(), id)
	if err != nil {
		return err
	}
	tokens, err := s.vaultNames(r.Context(), sess.TeamID, t.Headers)
	if err != nil {
		return err
	}
	tv := buildTaskView(s.a.taskJSON(t), t, as, tokens)
	if tv.Signal != nil {
		es, err := s.a.store.Events(r.Context(), id, 100)
		if err != nil {
			return err
		}
		for _, e := range es {
			ev := eventView{At: e.At, Kind: e.Kind}
			if e.Detail != nil {
				ev.Detail, _ = prettyJSON(*e.Detail)
			}
			tv.Signal.Events = append(tv.Signal.Events, ev)
		}
	}
	tv.SignalToken, tv.ResultText = token, typed
	live := url.Values{"watch": {t.ID}}
	s.render(w, r, status, "task", &view{Title: "Task " + t.ID, Nav: "tasks", Sess: sess, Flash: flash, Err: errMsg,
		Live: "/events?" + live.Encode(), Data: tv})
	return nil
}

// taskAction is POST /tasks/{id}/{cancel|retry|approve|reject}. Each calls the service
// function behind the matching API route for the session's team, so the admin page and
// the API cannot disagree on what an action does.
func (s *admin) taskAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := parseTaskID(r.PathValue("id"))
	if err != nil {
		return err
	}
	ctx, team := r.Context(), sess.TeamID
	action, done := r.PathValue("action"), r.PathValue("action")
	var token string
	switch action {
	case "cancel":
		_, err = s.a.cancelTeamTask(ctx, team, id)
	case "retry":
		_, token, err = s.a.retryTeamTask(ctx, team, id)
	case "approve", "reject":
		sig := &signalBody{Status: store.StatusCompleted}
		if action == "approve" {
			if res := strings.TrimSpace(r.PostFormValue("result")); res != "" {
				if !json.Valid([]byte(res)) {
					return s.showTaskTyped(w, r, sess, http.StatusBadRequest, "", "The result must be valid JSON, such as {\"approved\": true}.", "", r.PostFormValue("result"))
				}
				sig.Result = json.RawMessage(res)
			}
		} else {
			sig.Status = store.StatusFailed
			// Valid UTF-8, as a reason sent to the API in JSON always is.
			if reason := strings.ToValidUTF8(strings.TrimSpace(r.PostFormValue("reason")), "\uFFFD"); reason != "" {
				sig.Error = &reason
			}
		}
		canon, bad := checkSignal(sig)
		var out *signalOutcome
		out, err = s.a.signalTeamTask(ctx, team, id, sig, canon, bad)
		if err == nil && out.status == http.StatusAccepted {
			done = "buffered"
		}
	default:
		return errorf(http.StatusNotFound, "There is no action %q", action)
	}
	if err != nil {
		e := clientError(err)
		switch {
		case e == nil:
			return err
		case e.Status == http.StatusNotFound || e.Status == http.StatusForbidden:
			return errorf(http.StatusNotFound, "Task not found")
		}
		return s.showTask(w, r, sess, e.Status, "", e.Message, "")
	}
	if token != "" {
		s.reveals.put(sess, "token:"+id, token, "") // shown once, like the API does
	}
	http.Redirect(w, r, "/tasks/"+id+"?done="+done, http.StatusSeeOther)
	return nil
}

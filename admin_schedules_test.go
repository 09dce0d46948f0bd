package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// apiSchedule creates a schedule through the API with key.
func (e *adminEnv) apiSchedule(key string, body map[string]any) string {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/schedules", bytes.NewReader(b))
	req.Header.Set("X-API-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Schedule ScheduleJSON }
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 201 {
		e.t.Fatalf("create schedule: %d", res.StatusCode)
	}
	return out.Schedule.ID
}

func TestAdminSchedules(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	id := e.apiSchedule(e.key, map[string]any{"cron": "0 3 * * *", "timezone": "Europe/Berlin",
		"task": map[string]any{"targetUrl": "https://example.com/nightly"}})
	_, otherKey := e.newTeam("other")
	otherID := e.apiSchedule(otherKey, map[string]any{"every": "1h", "task": map[string]any{"targetUrl": "https://example.com/other"}})
	e.login("")

	list := e.do("GET", "/schedules", nil)
	if list.status != 200 || !strings.Contains(list.body, id) || !strings.Contains(list.body, "cron 0 3 * * * (Europe/Berlin)") {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	if strings.Contains(list.body, otherID) {
		t.Fatal("the list shows another team's schedule")
	}
	if r := e.do("GET", "/schedules/"+otherID, nil); r.status != 404 {
		t.Fatalf("another team's schedule: %d", r.status)
	}

	detail := e.do("GET", "/schedules/"+id, nil)
	if detail.status != 200 || strings.Count(detail.body[strings.Index(detail.body, `id="next-runs"`):], "<li>") < 5 ||
		!strings.Contains(detail.body, "https://example.com/nightly") {
		t.Fatalf("detail: %d %s", detail.status, detail.body)
	}

	// An action without confirmation only asks for it.
	r := e.do("POST", "/schedules/"+id+"/pause", url.Values{})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/schedules/"+id+"?confirm=pause" {
		t.Fatalf("unconfirmed pause: %d %s", r.status, r.header.Get("Location"))
	}
	if sc, _ := e.a.store.Schedule(context.Background(), id); sc.Paused {
		t.Fatal("paused without confirmation")
	}
	ask := e.do("GET", r.header.Get("Location"), nil)
	if !strings.Contains(ask.body, `id="confirm-question"`) || !strings.Contains(ask.body, `name="confirm" value="yes"`) {
		t.Fatalf("confirmation page: %s", ask.body)
	}
	confirm := url.Values{"confirm": {"yes"}}
	for _, action := range []string{"pause", "trigger", "resume"} {
		if r := e.do("POST", "/schedules/"+id+"/"+action, confirm); r.status != http.StatusSeeOther ||
			r.header.Get("Location") != "/schedules/"+id+"?done="+action {
			t.Fatalf("%s: %d %s %s", action, r.status, r.header.Get("Location"), r.body)
		}
		sc, _ := e.a.store.Schedule(context.Background(), id)
		if sc.Paused != (action == "pause" || action == "trigger") {
			t.Fatalf("after %s: paused = %v", action, sc.Paused)
		}
	}
	tasks, total, err := e.a.store.List(context.Background(), store.ListFilter{TeamID: e.teamID, ScheduleID: id, Limit: 10})
	if err != nil || total != 1 || *tasks[0].ScheduleID != id {
		t.Fatalf("tasks after one trigger: %d %v", total, err)
	}
	if d := e.do("GET", "/schedules/"+id, nil); !strings.Contains(d.body, tasks[0].ID) {
		t.Fatal("the detail page does not list the run's task")
	}
	if r := e.do("POST", "/schedules/"+otherID+"/delete", confirm); r.status != 404 {
		t.Fatalf("delete another team's schedule: %d", r.status)
	}
	if r := e.do("POST", "/schedules/"+id+"/delete", confirm); r.status != http.StatusSeeOther || r.header.Get("Location") != "/schedules?done=delete" {
		t.Fatalf("delete: %d %s", r.status, r.header.Get("Location"))
	}
	if _, err := e.a.store.Schedule(context.Background(), id); !store.IsNotFound(err) {
		t.Fatalf("schedule after delete: %v", err)
	}
}

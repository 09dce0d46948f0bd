package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/client"
)

// schedTarget is a callback target that counts its calls.
func schedTarget(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(200)
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

// schedTasks lists the tasks a schedule made (newest first) and their total.
func schedTasks(t *testing.T, s *server, id string) ([]map[string]any, int) {
	t.Helper()
	r := s.call("GET", "/v1/tasks?limit=100&scheduleId="+id, nil)
	if r.Status != 200 {
		t.Fatalf("list tasks of %s: %d %s", id, r.Status, r.Raw)
	}
	var out []map[string]any
	for _, x := range r.Body["tasks"].([]any) {
		out = append(out, x.(map[string]any))
	}
	total := int(r.Body["pagination"].(map[string]any)["total"].(float64))
	return out, total
}

// schedWaitTotal polls until the schedule has made at least n tasks and returns the total.
func schedWaitTotal(t *testing.T, s *server, id string, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, total := schedTasks(t, s, id)
		if total >= n {
			return total
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s made %d tasks after %v, want at least %d", id, total, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func schedCreate(t *testing.T, s *server, body map[string]any) map[string]any {
	t.Helper()
	r := s.call("POST", "/v1/schedules", body)
	if r.Status != 201 {
		t.Fatalf("create schedule: %d %s", r.Status, r.Raw)
	}
	return r.Body["schedule"].(map[string]any)
}

func TestE2EScheduleLifecycle(t *testing.T) {
	t.Parallel()
	target, hits := schedTarget(t)
	s := startServer(t, "")
	sc := schedCreate(t, s, map[string]any{"every": "1s", "task": map[string]any{"targetUrl": target.URL + "/tick", "body": `{"n":1}`}})
	id := sc["id"].(string)
	if !strings.HasPrefix(id, "sch_") || sc["every"] != "1s" || sc["cron"] != nil || sc["timezone"] != "UTC" ||
		sc["paused"] != false || sc["nextRunAt"] == nil || sc["lastRunAt"] != nil {
		t.Fatalf("created schedule: %v", sc)
	}
	if tk := sc["task"].(map[string]any); tk["targetUrl"] != target.URL+"/tick" {
		t.Fatalf("schedule task: %v", tk)
	}

	// It runs: ordinary tasks carrying scheduleId, called like any other.
	schedWaitTotal(t, s, id, 2, 15*time.Second)
	tasks, _ := schedTasks(t, s, id)
	for _, tk := range tasks {
		if tk["scheduleId"] != id {
			t.Fatalf("task %v has scheduleId %v, want %s", tk["id"], tk["scheduleId"], id)
		}
	}
	s.waitStatus(tasks[len(tasks)-1]["id"].(string), "completed", 10*time.Second)
	if hits.Load() == 0 {
		t.Fatal("the target was never called")
	}
	// Other tasks do not carry it, and the filter leaves them out.
	plain := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL})
	if plain.task()["scheduleId"] != nil || plain.Status != 201 {
		t.Fatalf("plain task: %d %s", plain.Status, plain.Raw)
	}
	for _, tk := range tasks {
		if tk["id"] == plain.task()["id"] {
			t.Fatal("scheduleId filter lists a task of no schedule")
		}
	}
	got := s.call("GET", "/v1/schedules/"+id, nil).Body["schedule"].(map[string]any)
	if got["lastRunAt"] == nil || got["lastTaskId"] == nil {
		t.Fatalf("schedule after runs: %v", got)
	}

	// Pause stops it.
	r := s.call("POST", "/v1/schedules/"+id+"/pause", nil)
	if r.Status != 200 || r.Body["schedule"].(map[string]any)["paused"] != true || r.Body["schedule"].(map[string]any)["nextRunAt"] != nil {
		t.Fatalf("pause: %d %s", r.Status, r.Raw)
	}
	_, paused := schedTasks(t, s, id)
	time.Sleep(2500 * time.Millisecond)
	if _, n := schedTasks(t, s, id); n != paused {
		t.Fatalf("paused schedule made tasks: %d, then %d", paused, n)
	}

	// Trigger runs it once, paused or not.
	r = s.call("POST", "/v1/schedules/"+id+"/trigger", nil)
	if r.Status != 201 || r.task()["scheduleId"] != id {
		t.Fatalf("trigger: %d %s", r.Status, r.Raw)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, n := schedTasks(t, s, id); n != paused+1 {
		t.Fatalf("after one trigger of a paused schedule: %d tasks, want %d", n, paused+1)
	}

	// Resume continues.
	r = s.call("POST", "/v1/schedules/"+id+"/resume", nil)
	if r.Status != 200 || r.Body["schedule"].(map[string]any)["paused"] != false || r.Body["schedule"].(map[string]any)["nextRunAt"] == nil {
		t.Fatalf("resume: %d %s", r.Status, r.Raw)
	}
	schedWaitTotal(t, s, id, paused+3, 15*time.Second)

	// PATCH changes the period and the body.
	r = s.call("PATCH", "/v1/schedules/"+id, map[string]any{"cron": "@yearly", "timezone": "Europe/Berlin"})
	if sc := r.Body["schedule"].(map[string]any); r.Status != 200 || sc["cron"] != "@yearly" || sc["every"] != nil || sc["timezone"] != "Europe/Berlin" {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	r = s.call("PATCH", "/v1/schedules/"+id, map[string]any{"every": "1s", "task": map[string]any{"targetUrl": target.URL + "/patched"}})
	if sc := r.Body["schedule"].(map[string]any); r.Status != 200 || sc["every"] != "1s" || sc["cron"] != nil ||
		sc["task"].(map[string]any)["targetUrl"] != target.URL+"/patched" {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	_, before := schedTasks(t, s, id)
	schedWaitTotal(t, s, id, before+1, 15*time.Second)
	tasks, _ = schedTasks(t, s, id)
	if tasks[0]["targetUrl"] != target.URL+"/patched" {
		t.Fatalf("run after patch: %v", tasks[0]["targetUrl"])
	}

	// Listed, paged.
	schedCreate(t, s, map[string]any{"cron": "0 9 * * 1-5", "timezone": "America/New_York", "paused": true,
		"task": map[string]any{"targetUrl": target.URL}})
	l := s.call("GET", "/v1/schedules?limit=1", nil)
	if l.Status != 200 || len(l.Body["schedules"].([]any)) != 1 || l.Body["pagination"].(map[string]any)["total"] != 2.0 ||
		l.Body["pagination"].(map[string]any)["hasMore"] != true {
		t.Fatalf("list: %d %s", l.Status, l.Raw)
	}

	// Another team sees none of it.
	other := aqtTeamCreate(t, s.db, "schedules-other")
	for _, c := range [][2]string{{"GET", ""}, {"POST", "/pause"}, {"POST", "/trigger"}, {"DELETE", ""}} {
		if r := s.call(c[0], "/v1/schedules/"+id+c[1], nil, "X-API-Key", other); r.Status != 404 {
			t.Errorf("%s by another team: %d %s, want 404", c[0]+" "+c[1], r.Status, r.Raw)
		}
	}
	if r := s.call("GET", "/v1/schedules", nil, "X-API-Key", other); r.Body["pagination"].(map[string]any)["total"] != 0.0 {
		t.Errorf("another team lists %s", r.Raw)
	}

	// Delete stops it; its tasks stay.
	r = s.call("DELETE", "/v1/schedules/"+id, nil)
	if r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	_, deleted := schedTasks(t, s, id)
	time.Sleep(2500 * time.Millisecond)
	if _, n := schedTasks(t, s, id); n != deleted || n == 0 {
		t.Fatalf("deleted schedule: %d tasks, then %d", deleted, n)
	}
	if r := s.call("GET", "/v1/schedules/"+id, nil); r.Status != 404 {
		t.Fatalf("get after delete: %d %s", r.Status, r.Raw)
	}
	if r := s.call("POST", "/v1/schedules/"+id+"/trigger", nil); r.Status != 404 {
		t.Fatalf("trigger after delete: %d %s", r.Status, r.Raw)
	}
}

func TestE2EScheduleBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--allow-targets", "127.0.0.1/32")
	task := map[string]any{"targetUrl": "http://127.0.0.1:9/x"}
	cases := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"no body", "", 400, "JSON object"},
		{"unknown field", map[string]any{"every": "1s", "task": task, "evry": "1s"}, 400, `"evry"`},
		{"neither", map[string]any{"task": task}, 400, "cron: give cron"},
		{"both", map[string]any{"cron": "* * * * *", "every": "1s", "task": task}, 400, "cron: give cron or every, not both"},
		{"bad cron", map[string]any{"cron": "* * *", "task": task}, 400, "cron: "},
		{"six fields", map[string]any{"cron": "0 * * * * *", "task": task}, 400, "cron: "},
		{"cron out of range", map[string]any{"cron": "0 25 * * *", "task": task}, 400, "cron: "},
		{"bad descriptor", map[string]any{"cron": "@fortnightly", "task": task}, 400, "cron: "},
		{"cron not a string", map[string]any{"cron": 5, "task": task}, 400, "cron"},
		{"every too short", map[string]any{"every": "500ms", "task": task}, 400, "every: must be at least 1s"},
		{"every zero", map[string]any{"every": "0s", "task": task}, 400, "every: "},
		{"every not a duration", map[string]any{"every": "often", "task": task}, 400, "every: "},
		{"every a number", map[string]any{"every": 30, "task": task}, 400, "every"},
		{"unknown zone", map[string]any{"cron": "@daily", "timezone": "Moon/Tranquility", "task": task}, 400, "timezone: unknown time zone"},
		{"no task", map[string]any{"every": "1s"}, 400, "task is required"},
		{"task not an object", map[string]any{"every": "1s", "task": "http://x"}, 400, "task must be a JSON object"},
		{"task without target", map[string]any{"every": "1s", "task": map[string]any{}}, 400, "task: targetUrl is required"},
		{"task unknown field", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://127.0.0.1:9", "retries": 3}}, 400, `task: Unknown field "retries"`},
		{"task bad priority", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://127.0.0.1:9", "priority": 11}}, 400, "task: priority"},
		{"task bad onCompleteUrl", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://127.0.0.1:9", "onCompleteUrl": "ftp://x"}}, 400, "task: onCompleteUrl"},
		{"task heartbeat without wait", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://127.0.0.1:9", "heartbeatTimeout": 5}}, 400, "task: heartbeatTimeout needs waitForSignal"},
		{"task unknown vault token", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://127.0.0.1:9",
			"headers": map[string]string{"Authorization": "tok_" + strings.Repeat("A", 24)}}}, 400, "task: headers: Authorization refers to vault token"},
		{"task blocked target", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": "http://10.0.0.1/x"}}, 422, "task: targetUrl"},
	}
	for _, c := range cases {
		r := s.call("POST", "/v1/schedules", c.body)
		if r.Status != c.status || !strings.Contains(fmt.Sprint(r.Body["error"]), c.want) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, r.Status, strings.TrimSpace(r.Raw), c.status, c.want)
		}
	}
	// The same checks on PATCH.
	sc := schedCreate(t, s, map[string]any{"every": "1h", "task": task})
	id := sc["id"].(string)
	for _, c := range []struct {
		body any
		want string
	}{
		{map[string]any{"cron": "nope"}, "cron: "},
		{map[string]any{"every": "1ms"}, "every: "},
		{map[string]any{"cron": "@daily", "every": "1h"}, "not both"},
		{map[string]any{"timezone": "Nowhere/Else"}, "timezone: "},
		{map[string]any{"task": map[string]any{"targetUrl": 7}}, "task: targetUrl"},
		{map[string]any{"pasued": true}, `"pasued"`},
	} {
		if r := s.call("PATCH", "/v1/schedules/"+id, c.body); r.Status != 400 || !strings.Contains(fmt.Sprint(r.Body["error"]), c.want) {
			t.Errorf("PATCH %v: %d %s, want 400 naming %q", c.body, r.Status, strings.TrimSpace(r.Raw), c.want)
		}
	}
	if r := s.call("GET", "/v1/schedules/"+id, nil); r.Body["schedule"].(map[string]any)["every"] != "1h" {
		t.Errorf("a refused PATCH changed the schedule: %s", r.Raw)
	}
	for _, p := range []string{"/v1/schedules/not-an-id", "/v1/schedules/" + strings.TrimPrefix(id, "sch_")} {
		if r := s.call("GET", p, nil); r.Status != 400 {
			t.Errorf("GET %s: %d %s, want 400", p, r.Status, r.Raw)
		}
	}
	if r := s.call("GET", "/v1/schedules/sch_01900000-0000-7000-8000-000000000000", nil); r.Status != 404 {
		t.Errorf("unknown schedule: %d %s, want 404", r.Status, r.Raw)
	}
}

var catchupRE = regexp.MustCompile(`asyncqueue_schedule_runs_total\{kind="catchup",outcome="created"\} (\d+)`)

func metricsCatchUps(t *testing.T, s *server) int {
	t.Helper()
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := catchupRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// Killed for several periods, a schedule makes one catch-up run at start-up, then runs on
// time again.
func TestE2EScheduleCatchUpAfterKill(t *testing.T) {
	t.Parallel()
	target, _ := schedTarget(t)
	s := startServer(t, "")
	id := schedCreate(t, s, map[string]any{"every": "1s", "task": map[string]any{"targetUrl": target.URL}})["id"].(string)
	schedWaitTotal(t, s, id, 2, 15*time.Second)

	s.kill() // SIGKILL
	if dup, _ := schedTasksDB(t, s.db, id); dup {
		t.Fatal("a run has two tasks, or a task no run key")
	}
	_, atKill := schedTasksDB(t, s.db, id)
	time.Sleep(6 * time.Second) // six periods missed
	s.launch(false)
	restarted := time.Now()

	// Wait for runs after the restart, then look at them.
	schedWaitTotal(t, s, id, atKill+4, 20*time.Second)
	if n := metricsCatchUps(t, s); n != 1 {
		t.Fatalf("catch-up runs after the restart: %d, want 1", n)
	}
	tasks, _ := schedTasks(t, s, id)
	var after []time.Time
	for _, tk := range tasks {
		c, _ := time.Parse(time.RFC3339Nano, tk["createdAt"].(string))
		if c.After(restarted.Add(-time.Second)) {
			after = append(after, c)
		}
	}
	sort.Slice(after, func(i, j int) bool { return after[i].Before(after[j]) })
	if len(after) < 4 {
		t.Fatalf("runs after restart: %v", after)
	}
	// No burst: the runs after the catch-up (and the on-time run right after it, which may
	// follow closely since the schedule keeps its phase) are a period apart.
	span := after[len(after)-1].Sub(after[0])
	if want := time.Duration(len(after)-2) * time.Second; span < want-300*time.Millisecond {
		t.Fatalf("%d runs within %v after the restart: a burst, not one catch-up (%v)", len(after), span, after)
	}
	for i := 2; i < len(after); i++ {
		if d := after[i].Sub(after[i-1]); d < 700*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("runs %d and %d after the restart are %v apart, want about 1s", i-1, i, d)
		}
	}
}

// schedTasksDB counts a schedule's tasks straight from the database file while the server
// is down, and tells whether one run has two tasks (it never should).
func schedTasksDB(t *testing.T, dbPath, id string) (dup bool, n int) {
	t.Helper()
	db := openDB(t, dbPath, false)
	defer db.Close()
	if err := db.QueryRow(rebind(dbPath, `select count(*) from tasks where schedule_id = ?`), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	var keys int
	if err := db.QueryRow(rebind(dbPath, `select count(*) from idempotency_keys where key like ?`), "schedule:"+id+":%").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	return keys != n, n
}

// The schedules commands drive a running server through the Go client.
func TestE2EScheduleCLI(t *testing.T) {
	t.Parallel()
	target, _ := schedTarget(t)
	s := startServer(t, "")
	flags := []string{"--url", s.base, "--api-key", s.key}
	cli := func(args ...string) (string, string, int) { return aqtCLI(t, append(args, flags...)...) }

	out, errOut, code := cli("schedules", "create", "--target-url", target.URL, "--every", "1h", "--priority", "7", "--json")
	if code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	var created struct{ Schedule ScheduleJSON }
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Schedule.ID, "sch_") {
		t.Fatalf("create printed %q: %v", out, err)
	}
	id := created.Schedule.ID
	if !strings.Contains(string(created.Schedule.Task), `"priority":7`) {
		t.Fatalf("task body: %s", created.Schedule.Task)
	}
	if out, _, code := cli("schedules", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "every 1h") {
		t.Fatalf("list: %d %s", code, out)
	}
	if out, _, code := cli("schedules", "pause", id); code != 0 || !strings.Contains(out, "Paused:") || !strings.Contains(out, "true") {
		t.Fatalf("pause: %d %s", code, out)
	}
	if out, _, code := cli("schedules", "resume", id); code != 0 || strings.Contains(out, "Next run:  -") {
		t.Fatalf("resume: %d %s", code, out)
	}
	if out, _, code := cli("schedules", "trigger", id); code != 0 || !strings.Contains(out, "pending") && !strings.Contains(out, "processing") && !strings.Contains(out, "completed") {
		t.Fatalf("trigger: %d %s", code, out)
	}
	if _, total := schedTasks(t, s, id); total != 1 {
		t.Fatalf("tasks after one trigger: %d", total)
	}
	if out, _, code := cli("schedules", "get", id); code != 0 || !strings.Contains(out, "Last task:") {
		t.Fatalf("get: %d %s", code, out)
	}
	if _, errOut, code := cli("schedules", "create", "--target-url", target.URL, "--cron", "61 * * * *"); code != exitInvalid || !strings.Contains(errOut, "cron") {
		t.Fatalf("bad cron: exit %d %s, want %d naming cron", code, errOut, exitInvalid)
	}
	if _, _, code := cli("schedules", "delete", id); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	if _, _, code := cli("schedules", "get", id); code != exitNotFound {
		t.Fatalf("get after delete: exit %d, want %d", code, exitNotFound)
	}
}

// The Go client's schedule methods against the real binary.
func TestE2EScheduleClient(t *testing.T) {
	t.Parallel()
	target, _ := schedTarget(t)
	s := startServer(t, "")
	c := client.New(s.base, s.key)
	ctx := context.Background()
	sc, err := c.CreateSchedule(ctx, client.CreateScheduleRequest{Every: 2 * time.Hour,
		Task: client.CreateTaskRequest{TargetURL: target.URL, Priority: 9}})
	if err != nil || sc.Every == nil || *sc.Every != "2h0m0s" || sc.NextRunAt == nil || sc.Paused {
		t.Fatalf("create: %+v %v", sc, err)
	}
	if _, err := c.CreateSchedule(ctx, client.CreateScheduleRequest{Cron: "nope", Task: client.CreateTaskRequest{TargetURL: target.URL}}); !client.IsInvalid(err) || !strings.Contains(err.Error(), "cron") {
		t.Fatalf("bad cron: %v", err)
	}
	if p, err := c.PauseSchedule(ctx, sc.ID); err != nil || !p.Paused || p.NextRunAt != nil {
		t.Fatalf("pause: %+v %v", p, err)
	}
	if r, err := c.ResumeSchedule(ctx, sc.ID); err != nil || r.Paused || r.NextRunAt == nil {
		t.Fatalf("resume: %+v %v", r, err)
	}
	cron, tz := "30 2 * * *", "Europe/Berlin"
	if u, err := c.UpdateSchedule(ctx, sc.ID, client.UpdateScheduleRequest{Cron: &cron, Timezone: &tz}); err != nil || u.Cron == nil || *u.Cron != cron || u.Every != nil || u.Timezone != tz {
		t.Fatalf("update: %+v %v", u, err)
	}
	task, err := c.TriggerSchedule(ctx, sc.ID)
	if err != nil || task.ScheduleID == nil || *task.ScheduleID != sc.ID || task.Priority != 9 {
		t.Fatalf("trigger: %+v %v", task, err)
	}
	list, err := c.ListTasks(ctx, client.ListOptions{ScheduleID: sc.ID})
	if err != nil || list.Pagination.Total != 1 || list.Tasks[0].ID != task.ID {
		t.Fatalf("tasks of the schedule: %+v %v", list, err)
	}
	got, err := c.GetSchedule(ctx, sc.ID)
	if err != nil || got.LastTaskID == nil || *got.LastTaskID != task.ID || got.LastRunAt == nil {
		t.Fatalf("get: %+v %v", got, err)
	}
	if l, err := c.ListSchedules(ctx, 10, 0); err != nil || l.Pagination.Total != 1 || l.Schedules[0].ID != sc.ID {
		t.Fatalf("list: %+v %v", l, err)
	}
	if err := c.DeleteSchedule(ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSchedule(ctx, sc.ID); !client.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

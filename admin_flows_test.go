package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAdminFlows(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	r := e.do("GET", "/flows", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "No flows yet") {
		t.Fatalf("empty flows page: %d %s", r.status, r.body)
	}

	key := "https://pay.example.net:8443"
	r = e.do("POST", "/flows", url.Values{"action": {"set"}, "key": {key}, "parallelism": {"7"}, "ratePerSecond": {"2.5"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("set: %d %s", r.status, r.body)
	}
	st := e.a.sched.stat(flowRef{e.teamID, key})
	if st.Parallelism != 7 || st.Settings.RatePerSecond != 2.5 {
		t.Fatalf("after set: %+v", st)
	}
	r = e.do("POST", "/flows", url.Values{"action": {"pause"}, "key": {key}})
	if r.status != http.StatusSeeOther || !e.a.sched.stat(flowRef{e.teamID, key}).Settings.Paused {
		t.Fatalf("pause: %d, flow %+v", r.status, e.a.sched.stat(flowRef{e.teamID, key}))
	}
	e.a.sched.pauseUntil(flowRef{e.teamID, "other"}, time.Now().Add(time.Minute))
	e.a.sched.noteError(flowRef{e.teamID, "other"}, "Target busy: HTTP 429 - Too Many Requests")
	page := e.do("GET", "/flows?done=pause", nil).body
	for _, want := range []string{key, "Flow paused", "yes, until resumed", "2.5/s", ">7<", "(Retry-After)", "HTTP 429", `value="resume"`} {
		if !strings.Contains(page, want) {
			t.Errorf("flows page lacks %q", want)
		}
	}
	r = e.do("POST", "/flows", url.Values{"action": {"resume"}, "key": {key}})
	if r.status != http.StatusSeeOther || e.a.sched.stat(flowRef{e.teamID, key}).Settings.Paused {
		t.Fatalf("resume: %d", r.status)
	}

	// Bad input: the page again, the mistake named, the key kept.
	r = e.do("POST", "/flows", url.Values{"action": {"set"}, "key": {key}, "parallelism": {"0"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "parallelism must be") || !strings.Contains(r.body, `value="`+key+`"`) {
		t.Errorf("parallelism 0: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/flows", url.Values{"action": {"set"}, "key": {""}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Flow key") {
		t.Errorf("empty key: %d", r.status)
	}
	// Another team's flows are not shown.
	_, keyB := e.newTeam("b")
	e.cookie, e.csrf = "", ""
	e.login(keyB)
	if page := e.do("GET", "/flows", nil).body; strings.Contains(page, key) {
		t.Error("team B sees team A's flow")
	}
}

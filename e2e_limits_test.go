package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// nested is a JSON value n arrays deep around a number.
func nested(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

// TestE2ELimitsJSONDepth: every JSON body the API accepts may nest at most MaxJSONDepth
// levels (the body's own object counts), so nothing stored can crash a recursive parser
// reading it back.
func TestE2ELimitsJSONDepth(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	cb := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "delay": 3600,
		"body": `{"callback":"` + CallbackPlaceholder + `"}`})
	aqtWant(t, cb, http.StatusCreated, "create a callback task")
	cbPath := strings.TrimPrefix(aqtStr(cb.Body, "callbackUrl"), s.base)

	deep := nested(9000)
	tooDeep := nested(MaxJSONDepth) // inside the body's object: one level too many
	for _, c := range []struct{ name, method, path, body string }{
		{"signal result", "POST", "/v1/signals/" + tok, `{"status":"completed","result":` + deep + `}`},
		{"signal result one level too deep", "POST", "/v1/signals/" + tok, `{"status":"completed","result":` + tooDeep + `}`},
		{"signal by id", "POST", "/v1/tasks/" + id + "/signal", `{"status":"completed","result":` + deep + `}`},
		{"heartbeat progress", "POST", "/v1/signals/" + tok + "/heartbeat", `{"progress":` + deep + `}`},
		{"task body", "POST", "/v1/tasks", `{"targetUrl":"` + target.URL + `","body":` + deep + `}`},
		{"provider callback", "POST", cbPath, deep},
	} {
		hdr := sigNoKey
		if strings.HasPrefix(c.path, "/v1/tasks") {
			hdr = nil
		}
		r := s.call(c.method, c.path, c.body, hdr...)
		if r.Status != http.StatusBadRequest || !strings.Contains(aqtErr(r), "64 levels") {
			t.Errorf("%s: %d %.200s, want 400 naming the depth limit", c.name, r.Status, r.Raw)
		}
	}
	if got := e2eGet(t, s, id); got["status"] != "waiting" {
		t.Fatalf("after the refused signals the task is %v, want still waiting", got["status"])
	}
	// Exactly at the limit: stored and served back.
	ok := nested(MaxJSONDepth - 1)
	r := s.call("POST", "/v1/signals/"+tok, `{"status":"completed","result":`+ok+`}`, sigNoKey...)
	aqtWant(t, r, http.StatusOK, "signal at the depth limit")
	if got := e2eJSON(e2eGet(t, s, id)["result"]); got != ok {
		t.Errorf("result served back as %.100s, want %.100s", got, ok)
	}
}

// TestE2EProviderAuthStaysWithOrigin: with forwardAuth, the vault-resolved credentials go
// to poll URLs on the targetUrl's origin only, never to a host the start response names.
func TestE2EProviderAuthStaysWithOrigin(t *testing.T) {
	t.Parallel()
	const secret = "Bearer SECRET-never-elsewhere"
	var mu sync.Mutex
	var seen []string // Authorization headers that reached the other host
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/locked") {
			http.Error(w, `{"detail":"Unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"status":"done"}`)
	}))
	defer other.Close()
	var sameAuth []string
	var start *httptest.Server
	start = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost { // the start call names where to poll
			fmt.Fprintf(w, `{"url":%q}`, r.URL.Query().Get("poll"))
			return
		}
		mu.Lock()
		sameAuth = append(sameAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"status":"done"}`)
	}))
	defer start.Close()
	s := startServer(t, "")
	r := s.call("POST", "/v1/tokens", map[string]any{"name": "provider", "value": secret})
	aqtWant(t, r, http.StatusCreated, "vault token")
	tok := aqtStr(aqtObj(r.Body, "token"), "id")
	create := func(poll string) string {
		task := aqtCreate(t, s, map[string]any{"targetUrl": start.URL + "/submit?poll=" + poll,
			"headers": map[string]string{"Authorization": tok},
			"pollConfig": map[string]any{"urlTemplate": "{startResult.body.url}", "interval": 1,
				"statusPath": "status", "doneValues": []string{"done"}, "forwardAuth": true}})
		return aqtStr(task, "id")
	}
	toOther := create(other.URL + "/status")
	locked := create(other.URL + "/locked")
	same := create(start.URL + "/status")
	s.waitStatus(toOther, "completed", 20*time.Second)
	s.waitStatus(same, "completed", 20*time.Second)
	failed := s.waitStatus(locked, "failed", 20*time.Second)
	if e := aqtStr(failed, "error"); !strings.Contains(e, "forwardAuth") || !strings.Contains(e, start.URL[len("http://"):]) {
		t.Errorf("a 401 from another host: error %q, want it to say the credentials were kept for the targetUrl's origin", e)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h != "" {
			t.Errorf("the other host received Authorization %q", h)
		}
	}
	if len(seen) < 2 {
		t.Errorf("the other host was polled %d times, want at least 2", len(seen))
	}
	if len(sameAuth) == 0 || sameAuth[0] != secret {
		t.Errorf("the targetUrl's own host got Authorization %q, want the vault value", sameAuth)
	}
}

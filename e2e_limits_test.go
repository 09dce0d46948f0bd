package main

import (
	"net/http"
	"strings"
	"testing"
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

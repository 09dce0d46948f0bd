package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// TestTaskJSONShape pins the bytes of a task answer: field names and order, null for an
// absent field, {} for no headers, numbers as encoding/json writes them, stored JSON
// compacted and HTML-escaped, strings HTML-escaped.
func TestTaskJSONShape(t *testing.T) {
	t.Parallel()
	body, delay, created := "say \"hi\"\n", "2026-01-15T10:30:00.000Z", "2026-01-15T10:29:00.000Z"
	flow, provider, hb := "jobs", "replicate", 1e21
	full := &TaskJSON{ID: "t1", TeamID: "team", Status: "completed", TargetURL: "https://x.example/a?b=1&c=<2>",
		Method: "POST", Headers: map[string]string{"X-B": "2", "A": "1"}, Body: &body, Timeout: 2.5,
		DelayUntil: &delay, MaxRetries: 3, RetryBackoff: "linear", Priority: 5, FlowKey: flow,
		WaitForSignal: true, MaxWaitTime: 1e-7, HeartbeatTimeout: &hb, RetryCount: 1,
		StartResult: []byte(`{ "a" : [1, 2] }`), Result: []byte(`{"html":"<b>"}`), Provider: &provider,
		CreatedAt: created}
	plain := taskJSON(&store.Task{ID: "t2", TeamID: "team", Status: store.StatusPending,
		TargetURL: "https://x.example/", Method: "GET", Headers: "{}", TimeoutMS: 30000, MaxRetries: 3,
		RetryBackoff: "exponential", Priority: 5, MaxWaitMS: 30000, CreatedAt: 1768472940000})
	cases := []struct {
		name string
		v    taskResponse
		want string
	}{
		{"every kind of field", taskResponse{SignalToken: "tok", Task: full},
			`{"signalToken":"tok","task":{"id":"t1","teamId":"team","status":"completed",` +
				`"targetUrl":"https://x.example/a?b=1\u0026c=\u003c2\u003e","method":"POST","headers":{"A":"1","X-B":"2"},` +
				`"body":"say \"hi\"\n","timeout":2.5,"delayUntil":"2026-01-15T10:30:00.000Z","maxRetries":3,` +
				`"retryBackoff":"linear","priority":5,"flowKey":"jobs","onCompleteUrl":null,"waitForSignal":true,` +
				`"maxWaitTime":1e-7,"heartbeatTimeout":1e+21,"retryCount":1,"startResult":{"a":[1,2]},` +
				`"result":{"html":"\u003cb\u003e"},"error":null,"progress":null,"lastHeartbeatAt":null,` +
				`"bufferedSignal":null,"onComplete":null,"provider":"replicate","pollConfig":null,"callbackId":null,` +
				`"createdAt":"2026-01-15T10:29:00.000Z","startedAt":null,"waitingSince":null,"expiresAt":null,` +
				`"completedAt":null,"scheduleId":null}}`},
		{"a plain task, buffered", taskResponse{Buffered: true, CallbackURL: "https://q.example/v1/callbacks/c", Task: plain},
			`{"buffered":true,"callbackUrl":"https://q.example/v1/callbacks/c","task":{"id":"t2","teamId":"team",` +
				`"status":"pending","targetUrl":"https://x.example/","method":"GET","headers":{},"body":null,` +
				`"timeout":30,"delayUntil":null,"maxRetries":3,"retryBackoff":"exponential","priority":5,` +
				`"flowKey":"https://x.example:443","onCompleteUrl":null,"waitForSignal":false,"maxWaitTime":30,` +
				`"heartbeatTimeout":null,"retryCount":0,"startResult":null,"result":null,"error":null,"progress":null,` +
				`"lastHeartbeatAt":null,"bufferedSignal":null,"onComplete":null,"provider":null,"pollConfig":null,` +
				`"callbackId":null,"createdAt":"2026-01-15T10:29:00.000Z","startedAt":null,"waitingSince":null,` +
				`"expiresAt":null,"completedAt":null,"scheduleId":null}}`},
		{"no task", taskResponse{}, `{"task":null}`},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		if err := writeJSON(w, http.StatusCreated, c.v); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := w.Body.String(); got != c.want+"\n" {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		if w.Code != http.StatusCreated || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q", c.name, w.Code, w.Header().Get("Content-Type"))
		}
	}

	// Stored JSON that is not JSON is an error, not a malformed answer.
	bad := *full
	bad.Progress = []byte(`{"a":`)
	if err := writeJSON(httptest.NewRecorder(), http.StatusOK, taskResponse{Task: &bad}); err == nil {
		t.Error("invalid stored JSON encoded without an error")
	}
}

// TestResultJSON pins the stored shape of a call's answer.
func TestResultJSON(t *testing.T) {
	t.Parallel()
	res := &outbound.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/html"}, "X-A": {"1", "2"}},
		Body: []byte("<p>&\xff"), Duration: 12 * time.Millisecond, Truncated: true}
	want := `{"statusCode":200,"headers":{"content-type":"text/html","x-a":"1, 2"},"body":"\u003cp\u003e\u0026\ufffd","duration":12,"truncated":true}`
	if got := resultJSON(res); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	res.Truncated, res.Header, res.Body = false, nil, nil
	want = `{"statusCode":200,"headers":{},"body":"","duration":12}`
	if got := resultJSON(res); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// TestDecodeErrors checks each kind of refusal of a request body: a 400 whose message
// names the field and says what to fix.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, MaxJSONDepth) + `1` + strings.Repeat(`}`, MaxJSONDepth)
	cases := []struct {
		name string
		body string
		into func() any
		want string // the whole message
	}{
		{"unknown field", `{"colour": "blue"}`, newCreate,
			`Unknown field "colour" (check its spelling; field names are case-sensitive)`},
		{"wrong case", `{"targetURL": "https://example.com"}`, newCreate,
			`Unknown field "targetURL" (check its spelling; field names are case-sensitive)`},
		{"wrong case in a signal", `{"status": "completed", "Result": 1}`, func() any { return &signalBody{} },
			`Unknown field "Result" (check its spelling; field names are case-sensitive)`},
		{"wrong case in a flow", `{"Parallelism": 2}`, func() any { return &flowRequest{} },
			`Unknown field "Parallelism" (check its spelling; field names are case-sensitive)`},
		{"wrong case in a schedule", `{"every": "1m", "timeZone": "UTC"}`, func() any { return &scheduleRequest{} },
			`Unknown field "timeZone" (check its spelling; field names are case-sensitive)`},
		{"given twice", `{"targetUrl": "https://a.example", "targetUrl": "https://b.example"}`, newCreate,
			`Field "targetUrl" is given twice; give it once`},
		{"a header given twice", `{"headers": {"X-A": "1", "X-A": "2"}}`, newCreate,
			`Field "headers.X-A" is given twice; give it once`},
		{"string for a number", `{"timeout": "30"}`, newCreate, `timeout must be a number, not a string`},
		{"string for a bool", `{"waitForSignal": "yes"}`, newCreate, `waitForSignal must be true or false, not a string`},
		{"bool for a number", `{"priority": true}`, newCreate, `priority must be a number, not true`},
		{"array for headers", `{"headers": []}`, newCreate, `headers must be an object, not an array`},
		{"number for a header", `{"headers": {"X-A": 1}}`, newCreate, `headers.X-A must be a string, not a number`},
		{"number out of range", `{"priority": 1e400}`, newCreate, `priority is out of range: 1e400`},
		{"body a number", `42`, newCreate, `Request body must be a JSON object, not a number`},
		{"body an array", `[{"targetUrl": "https://example.com"}]`, newCreate, `Request body must be a JSON object, not an array`},
		{"body a string", `"x"`, newCreate, `Request body must be a JSON object, not a string`},
		{"empty", " \n", newCreate, `Request body must be a JSON object`},
		{"cut short", `{"targetUrl": `, newCreate, `Invalid JSON: the body ends too early`},
		{"not JSON", `hello`, newCreate, `Invalid JSON at byte 0: invalid character 'h' at start of value`},
		{"a second object", `{"targetUrl": "https://example.com"} {}`, newCreate,
			`Request body must hold one JSON object, found more after it`},
		{"a closing brace after", `{"targetUrl": "https://example.com"}}`, newCreate,
			`Request body must hold one JSON object, found more after it`},
		{"garbage after", `{} garbage`, newCreate, `Request body must hold one JSON object, found more after it`},
		{"too deep", `{"body": ` + deep + `}`, newCreate, `JSON nests deeper than 64 levels; flatten it`},
	}
	for _, c := range cases {
		err := decodeBytes([]byte(c.body), c.into())
		e, ok := err.(*Error)
		if !ok || e.Status != http.StatusBadRequest || e.Message != c.want {
			t.Errorf("%s: %v, want 400 %q", c.name, err, c.want)
		}
	}

	// What is refused only for its spelling is accepted when spelled right; a string with
	// invalid UTF-8 reads with U+FFFD in its place, as before.
	var req createRequest
	if err := decodeBytes([]byte("{\"targetUrl\": \"https://example.com\", \"method\": \"\xffGET\", \"body\": "+
		strings.Repeat(`[`, MaxJSONDepth-1)+strings.Repeat(`]`, MaxJSONDepth-1)+"}"), &req); err != nil {
		t.Fatal(err)
	}
	if *req.TargetURL != "https://example.com" || *req.Method != "\ufffdGET" {
		t.Errorf("decoded %q %q", *req.TargetURL, *req.Method)
	}
}

func newCreate() any { return &createRequest{} }

// TestNestedFieldsExact checks that objects inside a body are held to the same spelling:
// pollConfig, given alone, over a provider's template, or in a schedule's task.
func TestNestedFieldsExact(t *testing.T) {
	t.Parallel()
	a := testApp()
	const cfg = `"urlTemplate": "https://api.example.com/jobs/{startResult.body.id}", "interval": 5,
		"statusPath": "status", "doneValues": ["done"], "failValues": ["failed"]`
	cases := []struct {
		name string
		body string
		want string
	}{
		{"unknown member", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": {` + cfg + `, "intervalSecond": 5}}`,
			`Unknown field "pollConfig.intervalSecond" (check its spelling; field names are case-sensitive)`},
		{"wrong case", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": {` + cfg + `, "StatusPath": "x"}}`,
			`Unknown field "pollConfig.StatusPath" (check its spelling; field names are case-sensitive)`},
		{"wrong case over a template", `{"targetUrl": "https://api.replicate.com/v1/predictions", "provider": "replicate",
			"pollConfig": {"Interval": 2}}`,
			`Unknown field "pollConfig.Interval" (check its spelling; field names are case-sensitive)`},
		{"wrong type", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": {"interval": "5"}}`,
			`pollConfig.interval must be a number, not a string`},
		{"wrong type in a list", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": {"doneValues": ["ok", 1]}}`,
			`pollConfig.doneValues.1 must be a string, not a number`},
		{"given twice", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": {"interval": 5, "interval": 6}}`,
			`Field "pollConfig.interval" is given twice; give it once`},
		{"not an object", `{"targetUrl": "https://api.example.com/jobs", "pollConfig": "fast"}`,
			`pollConfig must be an object, not a string`},
	}
	now := time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)
	for _, c := range cases {
		var req createRequest
		err := decodeBytes([]byte(c.body), &req)
		if err == nil {
			_, err = a.newTask(&req, "team", now)
		}
		if e, ok := err.(*Error); !ok || e.Status != http.StatusBadRequest || e.Message != c.want {
			t.Errorf("%s: %v, want 400 %q", c.name, err, c.want)
		}
		// The same body as a schedule's task names the field under task.
		_, err = a.validScheduleTask(t.Context(), "team", []byte(c.body), now)
		if e, ok := err.(*Error); !ok || e.Status != http.StatusBadRequest || e.Message != "task: "+c.want {
			t.Errorf("%s in a schedule: %v, want 400 %q", c.name, err, "task: "+c.want)
		}
	}

	// Over a template, a pollConfig changes the members it names; null keeps the template's.
	var req createRequest
	if err := decodeBytes([]byte(`{"targetUrl": "https://api.replicate.com/v1/predictions", "provider": "replicate",
		"pollConfig": {"interval": 7, "statusPath": null}}`), &req); err != nil {
		t.Fatal(err)
	}
	task, err := a.newTask(&req, "team", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*task.PollConfig, `"interval":7,`) || !strings.Contains(*task.PollConfig, `"statusPath":"status"`) {
		t.Errorf("pollConfig over the replicate template: %s", *task.PollConfig)
	}
}

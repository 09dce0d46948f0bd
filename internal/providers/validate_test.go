package providers

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func validConfig() PollConfig {
	return PollConfig{
		URLTemplate: "https://api.example.com/v1/jobs/{startResult.body.id}",
		Interval:    5,
		StatusPath:  "status",
		DoneValues:  []string{"done"},
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*PollConfig)
	}{
		{"minimal", func(*PollConfig) {}},
		{"interval 1", func(p *PollConfig) { p.Interval = 1 }},
		{"interval 3600", func(p *PollConfig) { p.Interval = 3600 }},
		{"fractional interval", func(p *PollConfig) { p.Interval = 2.5 }},
		{"leading placeholder", func(p *PollConfig) { p.URLTemplate = "{startResult.body.urls.get}" }},
		{"leading header placeholder", func(p *PollConfig) { p.URLTemplate = "{startResult.headers.Location}" }},
		{"http", func(p *PollConfig) { p.URLTemplate = "http://10.0.0.1:8080/jobs/{startResult.body.id}" }},
		{"no placeholder", func(p *PollConfig) { p.URLTemplate = "https://api.example.com/status" }},
		{"placeholder inside the host", func(p *PollConfig) { p.URLTemplate = "https://api.{startResult.body.region}.example.com/x" }},
		{"placeholder as the host", func(p *PollConfig) { p.URLTemplate = "https://{startResult.body.host}/x" }},
		{"placeholder in host", func(p *PollConfig) { p.URLTemplate = "https://{startResult.body.region}.example.com/x" }},
		{"all optional fields", func(p *PollConfig) {
			p.FailValues = []string{"failed", "canceled"}
			p.ResultPath = "output.0"
			p.ResultURLTemplate = "{startResult.body.response_url}"
			p.ErrorPath = "error.message"
			p.ForwardAuth = true
			p.AuthHeaders = []string{"Authorization", "xi-api-key", "X-Runway-Version"}
			p.MaxDuration = 600
		}},
		{"maxDuration 0", func(p *PollConfig) { p.MaxDuration = 0 }},
		{"maxDuration max", func(p *PollConfig) { p.MaxDuration = MaxMaxDuration }},
		{"status path with index", func(p *PollConfig) { p.StatusPath = "data.0.state" }},
	}
	for _, tt := range tests {
		p := validConfig()
		tt.edit(&p)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*PollConfig)
		want string // the exact error
	}{
		{"no urlTemplate", func(p *PollConfig) { p.URLTemplate = "" }, "pollConfig.urlTemplate is required"},
		{"relative url", func(p *PollConfig) { p.URLTemplate = "/v1/jobs/{startResult.body.id}" }, "pollConfig.urlTemplate must be an absolute http(s) URL"},
		{"ftp url", func(p *PollConfig) { p.URLTemplate = "ftp://x.test/{startResult.body.id}" }, "pollConfig.urlTemplate must be an absolute http(s) URL"},
		{"no host", func(p *PollConfig) { p.URLTemplate = "https:///x" }, "pollConfig.urlTemplate must be an absolute http(s) URL"},
		{"leading id placeholder then path", func(p *PollConfig) { p.URLTemplate = "x{startResult.body.id}" }, "pollConfig.urlTemplate must be an absolute http(s) URL"},
		{"space", func(p *PollConfig) { p.URLTemplate = "https://x.test/a b" }, "pollConfig.urlTemplate must not contain spaces or control characters"},
		{"unknown placeholder", func(p *PollConfig) { p.URLTemplate = "https://x.test/{startResult.id}" },
			"pollConfig.urlTemplate is invalid: unknown placeholder {startResult.id} (use {startResult.body.<path>} or {startResult.headers.<name>})"},
		{"bad placeholder path", func(p *PollConfig) { p.URLTemplate = "https://x.test/{startResult.body.a..b}" },
			"pollConfig.urlTemplate is invalid: placeholder {startResult.body.a..b}: invalid path: it has an empty segment (a leading, trailing or doubled dot)"},
		{"bad header name", func(p *PollConfig) { p.URLTemplate = "{startResult.headers.a:b}" },
			"pollConfig.urlTemplate is invalid: placeholder {startResult.headers.a:b}: invalid header name"},
		{"unclosed", func(p *PollConfig) { p.URLTemplate = "https://x.test/{startResult.body.id" },
			`pollConfig.urlTemplate is invalid: unclosed placeholder "{startResult.body.id"`},
		{"too long", func(p *PollConfig) { p.URLTemplate = "https://x.test/" + strings.Repeat("a", 5000) }, "pollConfig.urlTemplate is longer than 4096 characters"},
		{"placeholder right after the host", func(p *PollConfig) { p.URLTemplate = "https://api.x.test{startResult.body.id}" },
			`pollConfig.urlTemplate must end its host with "/" before a placeholder, so a value cannot change the host`},
		{"placeholder right after the port", func(p *PollConfig) { p.ResultURLTemplate = "https://api.x.test:8443{startResult.body.id}/r" },
			`pollConfig.resultUrlTemplate must end its host with "/" before a placeholder, so a value cannot change the host`},
		{"interval 0", func(p *PollConfig) { p.Interval = 0 }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"interval 0.5", func(p *PollConfig) { p.Interval = 0.5 }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"interval 3601", func(p *PollConfig) { p.Interval = 3601 }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"interval negative", func(p *PollConfig) { p.Interval = -5 }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"interval NaN", func(p *PollConfig) { p.Interval = math.NaN() }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"interval Inf", func(p *PollConfig) { p.Interval = math.Inf(1) }, "pollConfig.interval must be between 1 and 3600 seconds"},
		{"no statusPath", func(p *PollConfig) { p.StatusPath = "" }, "pollConfig.statusPath is required"},
		{"bad statusPath", func(p *PollConfig) { p.StatusPath = "status." },
			"pollConfig.statusPath is not a valid dot path: it has an empty segment (a leading, trailing or doubled dot)"},
		{"statusPath with space", func(p *PollConfig) { p.StatusPath = "a b" }, `pollConfig.statusPath is not a valid dot path: it contains ' '`},
		{"no doneValues", func(p *PollConfig) { p.DoneValues = nil }, "pollConfig.doneValues must list at least one status value"},
		{"empty doneValues", func(p *PollConfig) { p.DoneValues = []string{} }, "pollConfig.doneValues must list at least one status value"},
		{"empty done value", func(p *PollConfig) { p.DoneValues = []string{"ok", ""} }, "pollConfig.doneValues[1] is empty"},
		{"too many done values", func(p *PollConfig) { p.DoneValues = make([]string, 51) }, "pollConfig.doneValues may list at most 50 values"},
		{"empty fail value", func(p *PollConfig) { p.FailValues = []string{""} }, "pollConfig.failValues[0] is empty"},
		{"long fail value", func(p *PollConfig) { p.FailValues = []string{strings.Repeat("x", 201)} }, "pollConfig.failValues[0] is longer than 200 characters"},
		{"done and fail overlap", func(p *PollConfig) { p.FailValues = []string{"failed", "done"} }, `pollConfig.failValues[1] "done" is also in doneValues`},
		{"bad resultPath", func(p *PollConfig) { p.ResultPath = ".output" },
			"pollConfig.resultPath is not a valid dot path: it has an empty segment (a leading, trailing or doubled dot)"},
		{"bad resultUrlTemplate", func(p *PollConfig) { p.ResultURLTemplate = "result/{startResult.body.id}" }, "pollConfig.resultUrlTemplate must be an absolute http(s) URL"},
		{"bad resultUrlTemplate placeholder", func(p *PollConfig) { p.ResultURLTemplate = "{result.url}" },
			"pollConfig.resultUrlTemplate is invalid: unknown placeholder {result.url} (use {startResult.body.<path>} or {startResult.headers.<name>})"},
		{"bad errorPath", func(p *PollConfig) { p.ErrorPath = "error{x}" }, `pollConfig.errorPath is not a valid dot path: it contains '{'`},
		{"bad auth header", func(p *PollConfig) { p.AuthHeaders = []string{"Authorization", "bad header"} }, `pollConfig.authHeaders[1] "bad header" is not a valid header name`},
		{"empty auth header", func(p *PollConfig) { p.AuthHeaders = []string{""} }, `pollConfig.authHeaders[0] "" is not a valid header name`},
		{"host auth header", func(p *PollConfig) { p.AuthHeaders = []string{"host"} }, `pollConfig.authHeaders[0] "host" cannot be forwarded`},
		{"too many auth headers", func(p *PollConfig) { p.AuthHeaders = make([]string, 21) }, "pollConfig.authHeaders may list at most 20 headers"},
		{"negative maxDuration", func(p *PollConfig) { p.MaxDuration = -1 }, "pollConfig.maxDuration must be between 0 and 31536000 seconds (0 = default)"},
		{"huge maxDuration", func(p *PollConfig) { p.MaxDuration = 1e9 }, "pollConfig.maxDuration must be between 0 and 31536000 seconds (0 = default)"},
		{"NaN maxDuration", func(p *PollConfig) { p.MaxDuration = math.NaN() }, "pollConfig.maxDuration must be between 0 and 31536000 seconds (0 = default)"},
		{"maxDuration below interval", func(p *PollConfig) { p.Interval = 60; p.MaxDuration = 30 }, "pollConfig.maxDuration must be at least pollConfig.interval"},
	}
	for _, tt := range tests {
		p := validConfig()
		tt.edit(&p)
		err := p.Validate()
		if err == nil {
			t.Errorf("%s: no error, want %q", tt.name, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "pollConfig.") {
			t.Errorf("%s: error %q does not name the field", tt.name, err)
		}
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	replicate, _ := Get("replicate")
	fal, _ := Get("fal")
	custom := PollConfig{StatusPath: "job.state", DoneValues: []string{"1", "true"}, FailValues: []string{"-1"}}
	tests := []struct {
		name   string
		cfg    PollConfig
		code   int
		body   string
		state  State
		status string
		err    any
	}{
		{"202 is running whatever the body", replicate.PollConfig, 202, `{"status":"succeeded"}`, Running, "", nil},
		{"missing status", replicate.PollConfig, 200, `{"id":"x"}`, Running, "", nil},
		{"null status", replicate.PollConfig, 200, `{"status":null}`, Running, "", nil},
		{"body not an object", replicate.PollConfig, 200, `"text"`, Running, "", nil},
		{"object status", replicate.PollConfig, 200, `{"status":{"a":1}}`, Running, "", nil},
		{"unknown status", replicate.PollConfig, 200, `{"status":"booting"}`, Running, "booting", nil},
		{"case matters", replicate.PollConfig, 200, `{"status":"SUCCEEDED"}`, Running, "SUCCEEDED", nil},
		{"done", replicate.PollConfig, 200, `{"status":"succeeded","error":null}`, Done, "succeeded", nil},
		{"done despite error field when failValues exist", replicate.PollConfig, 200, `{"status":"succeeded","error":"warning"}`, Done, "succeeded", nil},
		{"failed with error", replicate.PollConfig, 200, `{"status":"failed","error":"boom"}`, Failed, "failed", "boom"},
		{"failed with error object", replicate.PollConfig, 200, `{"status":"failed","error":{"code":7}}`, Failed, "failed", map[string]any{"code": 7.0}},
		{"failed without error: whole body", replicate.PollConfig, 200, `{"status":"failed"}`, Failed, "failed", map[string]any{"status": "failed"}},
		{"fal completed", fal.PollConfig, 200, `{"status":"COMPLETED"}`, Done, "COMPLETED", nil},
		{"fal completed, null error", fal.PollConfig, 200, `{"status":"COMPLETED","error":null}`, Done, "COMPLETED", nil},
		{"fal completed, empty error", fal.PollConfig, 200, `{"status":"COMPLETED","error":""}`, Done, "COMPLETED", nil},
		{"fal completed with error", fal.PollConfig, 200, `{"status":"COMPLETED","error":"Internal error","error_type":"internal_error"}`, Failed, "COMPLETED", "Internal error"},
		{"fal in queue", fal.PollConfig, 200, `{"status":"IN_QUEUE","error":"ignored while running"}`, Running, "IN_QUEUE", nil},
		{"numeric status", custom, 200, `{"job":{"state":1}}`, Done, "1", nil},
		{"numeric fail", custom, 200, `{"job":{"state":-1}}`, Failed, "-1", map[string]any{"job": map[string]any{"state": -1.0}}},
		{"bool status", custom, 200, `{"job":{"state":true}}`, Done, "true", nil},
		{"numeric running", custom, 200, `{"job":{"state":0.5}}`, Running, "0.5", nil},
	}
	for _, tt := range tests {
		got := tt.cfg.Evaluate(tt.code, mustJSON(t, tt.body))
		if got.State != tt.state || got.Status != tt.status {
			t.Errorf("%s: got %v %q, want %v %q", tt.name, got.State, got.Status, tt.state, tt.status)
		}
		if tt.state == Failed {
			if !reflect.DeepEqual(got.Error, tt.err) {
				t.Errorf("%s: error %#v, want %#v", tt.name, got.Error, tt.err)
			}
		} else if got.Error != nil {
			t.Errorf("%s: error %#v on a non-failure", tt.name, got.Error)
		}
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	body := mustJSON(t, `{"status":"succeeded","output":["a","b"],"meta":{"n":null}}`)
	tests := []struct {
		path string
		want any
		err  string
	}{
		{"", body, ""},
		{"output", []any{"a", "b"}, ""},
		{"output.1", "b", ""},
		{"meta.n", nil, ""},
		{"outputs", nil, `resultPath outputs: no field "outputs" in the response body`},
		{"output.2", nil, `resultPath output.2: no field "output.2" in the response body`},
		{"meta.n.x", nil, `resultPath meta.n.x: no field "meta.n.x" in the response body`},
	}
	for _, tt := range tests {
		got, err := PollConfig{ResultPath: tt.path}.Result(body)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Result(%q) error = %v, want %q", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Result(%q): %v", tt.path, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Result(%q) = %#v, want %#v", tt.path, got, tt.want)
		}
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{Running: "running", Done: "done", Failed: "failed", State(9): "State(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q", int(s), s.String())
		}
	}
}

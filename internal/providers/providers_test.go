package providers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return v
}

func TestAllOrder(t *testing.T) {
	t.Parallel()
	var ids []string
	for _, p := range All() {
		ids = append(ids, p.ID)
	}
	want := []string{"fal", "replicate", "runwayml", "luma", "elevenlabs-dubbing", "stability-video"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
}

func TestEveryTemplateValidates(t *testing.T) {
	t.Parallel()
	for _, p := range All() {
		if err := p.PollConfig.Validate(); err != nil {
			t.Errorf("%s: %v", p.ID, err)
		}
		if p.Name == "" || p.Docs == "" {
			t.Errorf("%s: empty name or docs", p.ID)
		}
		if !strings.Contains(p.Docs, "https://") {
			t.Errorf("%s: docs do not link the provider's documentation", p.ID)
		}
		if !p.PollConfig.ForwardAuth {
			t.Errorf("%s: forwardAuth is off; every provider needs its key on the poll", p.ID)
		}
		if p.PollConfig.MaxDuration <= 0 {
			t.Errorf("%s: no maxDuration", p.ID)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	for _, want := range All() {
		got, ok := Get(want.ID)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Get(%q) = %+v, %v", want.ID, got, ok)
		}
	}
	for _, id := range []string{"", "Replicate", "openai", "fal "} {
		if _, ok := Get(id); ok {
			t.Errorf("Get(%q) found a template", id)
		}
	}
}

func TestAllReturnsCopies(t *testing.T) {
	t.Parallel()
	a := All()
	a[1].PollConfig.DoneValues[0] = "changed"
	a[1].PollConfig.URLTemplate = "changed"
	p, _ := Get("replicate")
	if p.PollConfig.DoneValues[0] != "succeeded" || p.PollConfig.URLTemplate != "{startResult.body.urls.get}" {
		t.Error("changing All's result changed the built-in template")
	}
	names := p.PollConfig.AuthHeaderNames()
	names[0] = "changed"
	if p2, _ := Get("replicate"); p2.PollConfig.AuthHeaders[0] != "Authorization" {
		t.Error("changing AuthHeaderNames' result changed the template")
	}
}

func TestJSONShape(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(All())
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		for _, k := range []string{"id", "name", "docs", "pollConfig"} {
			if _, ok := p[k]; !ok {
				t.Errorf("%v: no %q key", p["id"], k)
			}
		}
		pc := p["pollConfig"].(map[string]any)
		for _, k := range []string{"urlTemplate", "interval", "statusPath", "doneValues", "failValues", "forwardAuth", "authHeaders", "maxDuration"} {
			if _, ok := pc[k]; !ok {
				t.Errorf("%v: pollConfig has no %q", p["id"], k)
			}
		}
		if pc["failValues"] == nil {
			t.Errorf("%v: failValues is null, want a list", p["id"])
		}
	}
	// A PollConfig survives a JSON round trip.
	for _, p := range All() {
		b, _ := json.Marshal(p.PollConfig)
		var back PollConfig
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p.PollConfig) {
			t.Errorf("%s: round trip gave %+v, %v", p.ID, back, err)
		}
	}
}

func TestAuthHeaderNames(t *testing.T) {
	t.Parallel()
	if got := (PollConfig{}).AuthHeaderNames(); !reflect.DeepEqual(got, []string{"Authorization"}) {
		t.Errorf("default = %v", got)
	}
	if got := (PollConfig{AuthHeaders: []string{"xi-api-key"}}).AuthHeaderNames(); !reflect.DeepEqual(got, []string{"xi-api-key"}) {
		t.Errorf("explicit = %v", got)
	}
}

// TestTemplatesFollowProviderResponses runs each template over responses
// shaped like the provider's documented ones: start → poll URL → running →
// done (result) or failed (error).
func TestTemplatesFollowProviderResponses(t *testing.T) {
	t.Parallel()
	type poll struct {
		code  int
		body  string
		state State
		err   any // expected Outcome.Error when Failed
	}
	tests := []struct {
		id           string
		start        string
		pollURL      string
		resultURL    string
		polls        []poll
		resultBody   string // final poll body, or the resultUrlTemplate response
		wantResult   string
		headersCheck []string
	}{
		{
			id:        "replicate",
			start:     `{"id":"gm3qorzdhgbfurvjtvhg6dckhu","status":"starting","urls":{"get":"https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu","cancel":"https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel"}}`,
			pollURL:   "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
			resultURL: "",
			polls: []poll{
				{200, `{"id":"x","status":"starting","output":null,"error":null}`, Running, nil},
				{200, `{"id":"x","status":"processing","output":null,"error":null}`, Running, nil},
				{200, `{"id":"x","status":"failed","output":null,"error":"CUDA out of memory"}`, Failed, "CUDA out of memory"},
				{200, `{"id":"x","status":"canceled","output":null,"error":null}`, Failed, map[string]any{"id": "x", "status": "canceled", "output": nil, "error": nil}},
				{200, `{"id":"x","status":"aborted"}`, Failed, map[string]any{"id": "x", "status": "aborted"}},
				{200, `{"id":"x","status":"succeeded","output":["https://replicate.delivery/a.png"],"error":null}`, Done, nil},
			},
			resultBody: `{"id":"x","status":"succeeded","output":["https://replicate.delivery/a.png"],"error":null}`,
			wantResult: `["https://replicate.delivery/a.png"]`,
		},
		{
			id:        "fal",
			start:     `{"request_id":"80e732af-660e-45cd-bd63-580e4f2a94cc","response_url":"https://queue.fal.run/fal-ai/fast-sdxl/requests/80e732af-660e-45cd-bd63-580e4f2a94cc","status_url":"https://queue.fal.run/fal-ai/fast-sdxl/requests/80e732af-660e-45cd-bd63-580e4f2a94cc/status","cancel_url":"https://queue.fal.run/fal-ai/fast-sdxl/requests/80e732af-660e-45cd-bd63-580e4f2a94cc/cancel"}`,
			pollURL:   "https://queue.fal.run/fal-ai/fast-sdxl/requests/80e732af-660e-45cd-bd63-580e4f2a94cc/status",
			resultURL: "https://queue.fal.run/fal-ai/fast-sdxl/requests/80e732af-660e-45cd-bd63-580e4f2a94cc",
			polls: []poll{
				{202, `{"status":"IN_QUEUE","queue_position":3}`, Running, nil},
				{200, `{"status":"IN_QUEUE","queue_position":0}`, Running, nil},
				{200, `{"status":"IN_PROGRESS","logs":[]}`, Running, nil},
				{200, `{"status":"COMPLETED","error":"Request timed out","error_type":"request_timeout"}`, Failed, "Request timed out"},
				{200, `{"status":"COMPLETED","error":null,"metrics":{"inference_time":1.2}}`, Done, nil},
				{200, `{"status":"COMPLETED","response_url":"https://queue.fal.run/x"}`, Done, nil},
			},
			resultBody: `{"images":[{"url":"https://v3.fal.media/files/a.png","width":1024}],"seed":42}`,
			wantResult: `{"images":[{"url":"https://v3.fal.media/files/a.png","width":1024}],"seed":42}`,
		},
		{
			id:      "runwayml",
			start:   `{"id":"17f20503-6c24-4c16-946b-35dbbce2af2f"}`,
			pollURL: "https://api.dev.runwayml.com/v1/tasks/17f20503-6c24-4c16-946b-35dbbce2af2f",
			polls: []poll{
				{200, `{"id":"17f2","status":"PENDING","createdAt":"2024-11-30T07:06:07.912Z"}`, Running, nil},
				{200, `{"id":"17f2","status":"THROTTLED"}`, Running, nil},
				{200, `{"id":"17f2","status":"RUNNING","progress":0.4}`, Running, nil},
				{200, `{"id":"17f2","status":"FAILED","failure":"Content moderation","failureCode":"SAFETY.INPUT.TEXT"}`, Failed, "Content moderation"},
				{200, `{"id":"17f2","status":"CANCELLED"}`, Failed, map[string]any{"id": "17f2", "status": "CANCELLED"}},
				{200, `{"id":"17f2","status":"SUCCEEDED","output":["https://dnznrvs05pmza.cloudfront.net/a.mp4"]}`, Done, nil},
			},
			resultBody: `{"id":"17f2","status":"SUCCEEDED","output":["https://dnznrvs05pmza.cloudfront.net/a.mp4"]}`,
			wantResult: `["https://dnznrvs05pmza.cloudfront.net/a.mp4"]`,
		},
		{
			id:      "luma",
			start:   `{"id":"4b3c464e-94f6-4e54-bc21-12f0e6da5791","state":"queued","assets":null,"failure_reason":null}`,
			pollURL: "https://api.lumalabs.ai/dream-machine/v1/generations/4b3c464e-94f6-4e54-bc21-12f0e6da5791",
			polls: []poll{
				{200, `{"id":"4b3c","state":"queued","assets":null,"failure_reason":null}`, Running, nil},
				{200, `{"id":"4b3c","state":"dreaming","assets":null,"failure_reason":null}`, Running, nil},
				{200, `{"id":"4b3c","state":"failed","assets":null,"failure_reason":"prompt rejected"}`, Failed, "prompt rejected"},
				{200, `{"id":"4b3c","state":"completed","assets":{"video":"https://storage.cdn-luma.com/a.mp4"},"failure_reason":null}`, Done, nil},
			},
			resultBody: `{"id":"4b3c","state":"completed","assets":{"video":"https://storage.cdn-luma.com/a.mp4"},"failure_reason":null}`,
			wantResult: `{"video":"https://storage.cdn-luma.com/a.mp4"}`,
		},
		{
			id:      "elevenlabs-dubbing",
			start:   `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","expected_duration_sec":127.5}`,
			pollURL: "https://api.elevenlabs.io/v1/dubbing/21m00Tcm4TlvDq8ikWAM",
			polls: []poll{
				{200, `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","name":"x","status":"dubbing","target_languages":["es"],"error":null}`, Running, nil},
				{200, `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","name":"x","status":"failed","target_languages":["es"],"error":"no speech found"}`, Failed, "no speech found"},
				{200, `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","name":"x","status":"dubbed","target_languages":["es"]}`, Done, nil},
			},
			resultBody: `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","name":"x","status":"dubbed","target_languages":["es"]}`,
			wantResult: `{"dubbing_id":"21m00Tcm4TlvDq8ikWAM","name":"x","status":"dubbed","target_languages":["es"]}`,
		},
		{
			id:      "stability-video",
			start:   `{"id":"a6dc6c6e20acda010fe14d71f180658f2896ed9b4ec25aa99a6ff06c796987c4"}`,
			pollURL: "https://api.stability.ai/v2beta/image-to-video/result/a6dc6c6e20acda010fe14d71f180658f2896ed9b4ec25aa99a6ff06c796987c4",
			polls: []poll{
				{202, `{"id":"a6dc","status":"in-progress"}`, Running, nil},
				{202, `null`, Running, nil},
				{200, `{"id":"a6dc","status":"in-progress"}`, Running, nil},
				{200, `{"video":"","finish_reason":"CONTENT_FILTERED","seed":1}`, Failed, "CONTENT_FILTERED"},
				{200, `{"video":"AAAAIGZ0eXBpc29t","finish_reason":"SUCCESS","seed":343940597}`, Done, nil},
			},
			resultBody: `{"video":"AAAAIGZ0eXBpc29t","finish_reason":"SUCCESS","seed":343940597}`,
			wantResult: `{"video":"AAAAIGZ0eXBpc29t","finish_reason":"SUCCESS","seed":343940597}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			p, ok := Get(tt.id)
			if !ok {
				t.Fatal("no template")
			}
			cfg := p.PollConfig
			start := mustJSON(t, tt.start)
			got, err := Expand(cfg.URLTemplate, start, nil)
			if err != nil || got != tt.pollURL {
				t.Errorf("poll URL = %q, %v; want %q", got, err, tt.pollURL)
			}
			if cfg.ResultURLTemplate != "" {
				got, err := Expand(cfg.ResultURLTemplate, start, nil)
				if err != nil || got != tt.resultURL {
					t.Errorf("result URL = %q, %v; want %q", got, err, tt.resultURL)
				}
			} else if tt.resultURL != "" {
				t.Error("template has no resultUrlTemplate")
			}
			for i, pl := range tt.polls {
				out := cfg.Evaluate(pl.code, mustJSON(t, pl.body))
				if out.State != pl.state {
					t.Errorf("poll %d (%d %s): state %v, want %v", i, pl.code, pl.body, out.State, pl.state)
				}
				if pl.state == Failed && !reflect.DeepEqual(out.Error, pl.err) {
					t.Errorf("poll %d: error %#v, want %#v", i, out.Error, pl.err)
				}
			}
			res, err := cfg.Result(mustJSON(t, tt.resultBody))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res, mustJSON(t, tt.wantResult)) {
				t.Errorf("result = %#v, want %s", res, tt.wantResult)
			}
		})
	}
}

func TestProviderAuthHeaders(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"fal":                {"Authorization"},
		"replicate":          {"Authorization"},
		"runwayml":           {"Authorization", "X-Runway-Version"},
		"luma":               {"Authorization"},
		"elevenlabs-dubbing": {"xi-api-key"},
		"stability-video":    {"Authorization"},
	}
	for id, w := range want {
		p, _ := Get(id)
		if got := p.PollConfig.AuthHeaderNames(); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: auth headers %v, want %v", id, got, w)
		}
	}
}

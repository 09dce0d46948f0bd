// Package providers holds the built-in polling templates for AI media
// providers, the PollConfig they share with user-supplied configurations,
// and the pieces of the polling protocol that do not need the network:
// validation, URL templates and JSON dot paths.
//
// # Polling rules
//
// A polling task starts with its ordinary call (the "start"); its response
// is the start result. Then, every Interval seconds, the poller must:
//
//  1. Build the poll URL with Expand(URLTemplate, startBody, startHeaders).
//     An Expand error fails the task with that error (it names the missing
//     path). The URL then goes through the same outbound address policy as
//     any target.
//  2. GET it with header "Accept: application/json" (Stability answers with
//     raw video bytes otherwise), plus, when ForwardAuth is set, the task's
//     own headers named in AuthHeaderNames() (case-insensitive; vault
//     "tok_…" values resolved at send time), but only to a URL with the
//     start request's origin: every built-in template polls the host its
//     start request went to, and a start response must not be able to send
//     the credentials to another one.
//  3. On a network error or a 5xx, keep polling (treating 429 the same is
//     recommended: it is a rate limit, not an answer). On a 4xx, fail the
//     task with the response as its error. Any 2xx, 202 included, is a poll
//     response; its body is parsed as JSON. A 202 means still running even
//     when its body is not JSON; any other 2xx body that is not JSON fails
//     the task, since no template can read it.
//  4. Classify the 2xx response with Evaluate. HTTP 202 Accepted means
//     still running, whatever the body says (Stability's image-to-video
//     result endpoint answers 202 while the video is being made). A
//     StatusPath that is missing or null means still running (the body of
//     Stability's 202 has no finish_reason). Otherwise the status (a JSON
//     string as is, a number or boolean as its JSON text) is compared,
//     case-sensitively: one of FailValues means failed, with the ErrorPath
//     value as the error (the whole body when ErrorPath is empty or the
//     value missing or null); one of DoneValues means done; anything else
//     means still running. One exception: a template without FailValues
//     reports failures through ErrorPath, so when FailValues is empty and a
//     done response holds an ErrorPath value other than null, false, "" or
//     an empty object or array, the task fails with it (fal reports a
//     failed request as COMPLETED with an "error" field).
//  5. When done: if ResultURLTemplate is set, GET the expanded URL with the
//     same headers (a non-2xx answer fails the task with the response) and
//     take its JSON body; otherwise take the final poll body. Then apply
//     ResultPath with Result ("" = the whole body; a missing path fails the
//     task with an error naming it).
//  6. When MaxDuration seconds (the caller's default when 0) have passed
//     since polling began, the task times out.
//
// Provider notes: fal authenticates with "Authorization: Key <FAL_KEY>"
// (scheme Key, not Bearer); ElevenLabs with an "xi-api-key" header; Runway
// requires "X-Runway-Version: 2024-11-06" on every request, so its template
// forwards that header too.
package providers

import "slices"

// PollConfig tells the poller how to follow one asynchronous job.
type PollConfig struct {
	URLTemplate       string   `json:"urlTemplate"`                 // with {startResult.body.<path>} placeholders
	Interval          float64  `json:"interval"`                    // seconds
	StatusPath        string   `json:"statusPath"`                  // dot path into the poll response JSON
	DoneValues        []string `json:"doneValues"`                  // statuses that mean the job succeeded
	FailValues        []string `json:"failValues"`                  // statuses that mean the job failed
	ResultPath        string   `json:"resultPath,omitempty"`        // "" = whole body
	ResultURLTemplate string   `json:"resultUrlTemplate,omitempty"` // a final GET whose response is the result
	ErrorPath         string   `json:"errorPath,omitempty"`         // where a failed job explains itself
	ForwardAuth       bool     `json:"forwardAuth"`                 // forward the task's auth headers to poll/result requests
	AuthHeaders       []string `json:"authHeaders,omitempty"`       // which headers count as auth (default ["Authorization"])
	MaxDuration       float64  `json:"maxDuration,omitempty"`       // seconds; 0 = default of the caller
}

// Provider is a built-in polling template.
type Provider struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Docs       string     `json:"docs"` // what to send, where the result is, and any rule the poller must apply
	PollConfig PollConfig `json:"pollConfig"`
}

// DefaultAuthHeaders are the headers forwarded when AuthHeaders is empty.
var DefaultAuthHeaders = []string{"Authorization"}

// AuthHeaderNames returns AuthHeaders, or DefaultAuthHeaders when it is empty.
func (p PollConfig) AuthHeaderNames() []string {
	if len(p.AuthHeaders) == 0 {
		return slices.Clone(DefaultAuthHeaders)
	}
	return slices.Clone(p.AuthHeaders)
}

// All returns the built-in templates in their listing order: fal, replicate,
// runwayml, luma, elevenlabs-dubbing, stability-video. The slices are fresh
// copies the caller may change.
func All() []Provider {
	return builtins()
}

// Get returns the built-in template with this id.
func Get(id string) (Provider, bool) {
	for _, p := range builtins() {
		if p.ID == id {
			return p, true
		}
	}
	return Provider{}, false
}

func builtins() []Provider {
	return []Provider{
		// fal.ai docs, "Queue API | fal.ai Reference" (Model Endpoints → Queue),
		// https://docs.fal.ai/model-endpoints/queue, and "Request Error Types",
		// https://docs.fal.ai/documentation/model-apis/request-errors.
		// Submit (POST https://queue.fal.run/{model_id}) answers request_id,
		// status_url, response_url, cancel_url. The status is IN_QUEUE,
		// IN_PROGRESS or COMPLETED; a failed request is also COMPLETED and
		// carries an error. The output is a GET of response_url.
		{
			ID:   "fal",
			Name: "fal.ai queue",
			Docs: "Start: POST https://queue.fal.run/<model_id> with header Authorization: Key <FAL_KEY> (scheme Key, not Bearer); " +
				"the answer has request_id, status_url and response_url. Polls GET status_url until status is COMPLETED " +
				"(IN_QUEUE and IN_PROGRESS mean running; the status endpoint may answer 202 while running). " +
				"fal has no failed status: a failed request is COMPLETED with an \"error\" field, so a COMPLETED response " +
				"with a non-empty error fails the task. The result is the JSON of GET response_url (a non-2xx answer there fails the task). " +
				"Docs: https://docs.fal.ai/model-endpoints/queue",
			PollConfig: PollConfig{
				URLTemplate:       "{startResult.body.status_url}",
				Interval:          2,
				StatusPath:        "status",
				DoneValues:        []string{"COMPLETED"},
				FailValues:        []string{},
				ResultURLTemplate: "{startResult.body.response_url}",
				ErrorPath:         "error",
				ForwardAuth:       true,
				AuthHeaders:       []string{"Authorization"},
				MaxDuration:       3600,
			},
		},
		// Replicate docs, "Prediction lifecycle",
		// https://replicate.com/docs/topics/predictions/lifecycle, and the
		// HTTP API reference "Get a prediction",
		// https://replicate.com/docs/reference/http#predictions.get.
		// Create answers {id, status, urls: {get, cancel}}; statuses are
		// starting, processing, succeeded, failed, canceled, aborted.
		{
			ID:   "replicate",
			Name: "Replicate predictions",
			Docs: "Start: POST https://api.replicate.com/v1/predictions (or /v1/models/<owner>/<name>/predictions) with " +
				"Authorization: Bearer <token>; the answer has id and urls.get. Polls GET urls.get until status is succeeded; " +
				"failed, canceled and aborted fail the task with the prediction's error. The result is the prediction's output. " +
				"Docs: https://replicate.com/docs/topics/predictions/lifecycle",
			PollConfig: PollConfig{
				URLTemplate: "{startResult.body.urls.get}",
				Interval:    2,
				StatusPath:  "status",
				DoneValues:  []string{"succeeded"},
				FailValues:  []string{"failed", "canceled", "aborted"},
				ResultPath:  "output",
				ErrorPath:   "error",
				ForwardAuth: true,
				AuthHeaders: []string{"Authorization"},
				MaxDuration: 3600,
			},
		},
		// Runway API reference, "Get task detail" (Task management),
		// https://docs.dev.runwayml.com/api/#tag/Task-management.
		// Generation endpoints answer {id}; GET /v1/tasks/{id} reports status
		// PENDING, THROTTLED, RUNNING, SUCCEEDED, FAILED or CANCELLED, output
		// (an array of URLs) on success and failure/failureCode on failure.
		// The API asks clients not to poll a task more than every 5 seconds,
		// and every request needs the X-Runway-Version header.
		{
			ID:   "runwayml",
			Name: "Runway tasks",
			Docs: "Start: POST https://api.dev.runwayml.com/v1/<generation endpoint, e.g. image_to_video> with " +
				"Authorization: Bearer <key> and X-Runway-Version: 2024-11-06; the answer has id. Polls GET " +
				"https://api.dev.runwayml.com/v1/tasks/<id> every 5 s (Runway's minimum) until status is SUCCEEDED; FAILED and " +
				"CANCELLED fail the task with the failure text. The result is output (an array of URLs, which expire). " +
				"Both Authorization and X-Runway-Version are forwarded to the polls. Docs: https://docs.dev.runwayml.com/api/",
			PollConfig: PollConfig{
				URLTemplate: "https://api.dev.runwayml.com/v1/tasks/{startResult.body.id}",
				Interval:    5,
				StatusPath:  "status",
				DoneValues:  []string{"SUCCEEDED"},
				FailValues:  []string{"FAILED", "CANCELLED"},
				ResultPath:  "output",
				ErrorPath:   "failure",
				ForwardAuth: true,
				AuthHeaders: []string{"Authorization", "X-Runway-Version"},
				MaxDuration: 3600,
			},
		},
		// Luma Dream Machine API reference, "Get generation",
		// https://docs.lumalabs.ai/reference/getgeneration.
		// Create (POST /dream-machine/v1/generations, /generations/video or
		// /generations/image) answers the generation object; its state is
		// queued, dreaming, completed or failed, with failure_reason and the
		// output URLs under assets (video, image).
		{
			ID:   "luma",
			Name: "Luma Dream Machine generations",
			Docs: "Start: POST https://api.lumalabs.ai/dream-machine/v1/generations (or /generations/video, /generations/image) " +
				"with Authorization: Bearer <key>; the answer is the generation with its id. Polls GET " +
				"https://api.lumalabs.ai/dream-machine/v1/generations/<id> until state is completed; failed fails the task with " +
				"failure_reason. The result is assets (video and/or image URLs). Docs: https://docs.lumalabs.ai/reference/getgeneration",
			PollConfig: PollConfig{
				URLTemplate: "https://api.lumalabs.ai/dream-machine/v1/generations/{startResult.body.id}",
				Interval:    3,
				StatusPath:  "state",
				DoneValues:  []string{"completed"},
				FailValues:  []string{"failed"},
				ResultPath:  "assets",
				ErrorPath:   "failure_reason",
				ForwardAuth: true,
				AuthHeaders: []string{"Authorization"},
				MaxDuration: 3600,
			},
		},
		// ElevenLabs API reference, "Dub a video or audio file" and "Get
		// dubbing", https://elevenlabs.io/docs/api-reference/dubbing/get.
		// Create answers {dubbing_id, expected_duration_sec}; GET
		// /v1/dubbing/{dubbing_id} reports status dubbing, dubbed or failed,
		// with error, and the target_languages. The dubbed media is a
		// separate binary download per language, so it is not the result.
		{
			ID:   "elevenlabs-dubbing",
			Name: "ElevenLabs dubbing",
			Docs: "Start: POST https://api.elevenlabs.io/v1/dubbing (multipart) with header xi-api-key: <key>; the answer has " +
				"dubbing_id and expected_duration_sec. Polls GET https://api.elevenlabs.io/v1/dubbing/<dubbing_id> until status is " +
				"dubbed; failed fails the task with error. The result is the dubbing metadata (name, source_language, " +
				"target_languages…); the dubbed file itself is GET /v1/dubbing/<dubbing_id>/audio/<language_code> (binary), " +
				"which is not fetched. Only xi-api-key is forwarded. Docs: https://elevenlabs.io/docs/api-reference/dubbing/get",
			PollConfig: PollConfig{
				URLTemplate: "https://api.elevenlabs.io/v1/dubbing/{startResult.body.dubbing_id}",
				Interval:    10,
				StatusPath:  "status",
				DoneValues:  []string{"dubbed"},
				FailValues:  []string{"failed"},
				ErrorPath:   "error",
				ForwardAuth: true,
				AuthHeaders: []string{"xi-api-key"},
				MaxDuration: 7200,
			},
		},
		// Stability AI REST API v2beta, "Image-to-Video" → "Fetch generation
		// result" (GET /v2beta/image-to-video/result/{id}),
		// https://platform.stability.ai/docs/api-reference#tag/Image-to-Video.
		// Start answers {id}. The result endpoint answers 202 while in
		// progress and 200 when done; with "Accept: application/json" the 200
		// body is {video (base64 MP4), finish_reason (SUCCESS or
		// CONTENT_FILTERED), seed}. Results are kept 24 hours.
		{
			ID:   "stability-video",
			Name: "Stability AI image-to-video",
			Docs: "Start: POST https://api.stability.ai/v2beta/image-to-video (multipart) with Authorization: Bearer <key>; the " +
				"answer has id. Polls GET https://api.stability.ai/v2beta/image-to-video/result/<id> with Accept: application/json. " +
				"That endpoint has no status field while running: it answers 202 (body without finish_reason) until the video is " +
				"ready, then 200 with {video (base64 MP4), finish_reason, seed}. Rule: a 202, or a response without finish_reason, " +
				"means still running. finish_reason SUCCESS completes the task with the whole body; CONTENT_FILTERED fails it. " +
				"The base64 video is several MB. Docs: https://platform.stability.ai/docs/api-reference#tag/Image-to-Video",
			PollConfig: PollConfig{
				URLTemplate: "https://api.stability.ai/v2beta/image-to-video/result/{startResult.body.id}",
				Interval:    10,
				StatusPath:  "finish_reason",
				DoneValues:  []string{"SUCCESS"},
				FailValues:  []string{"CONTENT_FILTERED"},
				ErrorPath:   "finish_reason",
				ForwardAuth: true,
				AuthHeaders: []string{"Authorization"},
				MaxDuration: 1800,
			},
		},
	}
}

package main

// The OpenAPI document (openapi.json, served at GET /v1/openapi.json) checked with
// libopenapi-validator: it is valid OpenAPI 3.1; it documents exactly the routes the server
// registers (read from routes() and probed on the running binary); its schemas name the same
// fields as the Go types behind them; and real requests, responses and webhooks of the
// running binary validate against it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/asyncqueue/asyncqueue/internal/providers"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

const oaFile = "openapi.json"

// oaSpec is the parsed document: its raw JSON, its model and a validator over it.
type oaSpec struct {
	bytes []byte
	raw   map[string]any
	model *v3.Document
	v     validator.Validator
	mu    sync.Mutex // the validator is shared by parallel tests
}

var (
	oaOnce   sync.Once
	oaLoaded *oaSpec
	oaErr    error
)

// oaLoad parses openapi.json once and builds its validator (format assertions on, so
// date-time and uuid values are checked too).
func oaLoad(t testing.TB) *oaSpec {
	t.Helper()
	oaOnce.Do(func() {
		b, err := os.ReadFile(oaFile)
		if err != nil {
			oaErr = err
			return
		}
		sp := &oaSpec{bytes: b}
		if err := json.Unmarshal(b, &sp.raw); err != nil {
			oaErr = fmt.Errorf("%s is not JSON: %w", oaFile, err)
			return
		}
		doc, err := libopenapi.NewDocument(b)
		if err != nil {
			oaErr = fmt.Errorf("parse %s: %w", oaFile, err)
			return
		}
		m, err := doc.BuildV3Model()
		if err != nil {
			oaErr = fmt.Errorf("build the OpenAPI 3 model of %s: %w", oaFile, err)
			return
		}
		sp.model = &m.Model
		v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
		if len(errs) > 0 {
			oaErr = fmt.Errorf("validator for %s: %v", oaFile, errs)
			return
		}
		sp.v = v
		oaLoaded = sp
	})
	if oaErr != nil {
		t.Fatal(oaErr)
	}
	return oaLoaded
}

// oaFormat renders validation errors with every schema failure and where it is.
func oaFormat(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			loc := f.FieldPath
			if loc == "" {
				loc = "/" + strings.Join(f.InstancePath, "/")
			}
			fmt.Fprintf(&b, "\n      at %s: %s (schema %s)", loc, f.Reason, f.KeywordLocation)
		}
	}
	return b.String()
}

// checkExchange validates one request and its response against the document. reqValid
// false means the test sent bad input on purpose: then the document must refuse the
// request too, and only the response is held to it.
func (sp *oaSpec) checkExchange(t testing.TB, newReq func() *http.Request, status int, header http.Header, body []byte, reqValid bool) {
	t.Helper()
	req := newReq()
	res := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	what := req.Method + " " + req.URL.RequestURI()
	sp.mu.Lock()
	reqOK, reqErrs := sp.v.ValidateHttpRequestSync(req)
	resOK, resErrs := sp.v.ValidateHttpResponse(newReq(), res)
	sp.mu.Unlock()
	switch {
	case reqValid && !reqOK:
		t.Errorf("%s: the request does not match %s:%s", what, oaFile, oaFormat(reqErrs))
	case !reqValid && reqOK:
		t.Errorf("%s: the document accepts this request, which the server refused with %d: %.300s", what, status, body)
	}
	if !resOK {
		t.Errorf("%s: the %d response does not match %s:%s\nbody: %.1000s", what, status, oaFile, oaFormat(resErrs), body)
	}
}

// oaClient sends requests to a running server and validates every exchange.
type oaClient struct {
	t  *testing.T
	s  *server
	sp *oaSpec
}

type oaRes struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r oaRes) task() map[string]any {
	m, _ := r.Body["task"].(map[string]any)
	return m
}

func (r oaRes) str(keys ...string) string {
	var v any = r.Body
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// call sends a request that must conform to the document; headers are name/value pairs
// (an empty value removes the header). The bootstrap key goes in X-API-Key unless removed.
func (c *oaClient) call(method, p string, body any, headers ...string) oaRes {
	c.t.Helper()
	return c.exchange(true, method, p, body, headers...)
}

// bad sends a request that the document must refuse as well as the server.
func (c *oaClient) bad(method, p string, body any, headers ...string) oaRes {
	c.t.Helper()
	return c.exchange(false, method, p, body, headers...)
}

func (c *oaClient) exchange(reqValid bool, method, p string, body any, headers ...string) oaRes {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		raw, _ = json.Marshal(b)
	}
	newReq := func() *http.Request {
		var rd io.Reader = http.NoBody
		if body != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, c.s.base+p, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("X-API-Key", c.s.key)
		for i := 0; i+1 < len(headers); i += 2 {
			if headers[i+1] == "" {
				req.Header.Del(headers[i])
			} else {
				req.Header.Set(headers[i], headers[i+1])
			}
		}
		return req
	}
	res, err := http.DefaultClient.Do(newReq())
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, p, err)
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.t.Fatalf("%s %s: read the response: %v", method, p, err)
	}
	c.sp.checkExchange(c.t, newReq, res.StatusCode, res.Header, resBody, reqValid)
	out := oaRes{Status: res.StatusCode, Header: res.Header, Raw: resBody}
	json.Unmarshal(resBody, &out.Body)
	return out
}

// want fails the test unless r has status code.
func (c *oaClient) want(r oaRes, code int, what string) oaRes {
	c.t.Helper()
	if r.Status != code {
		c.t.Fatalf("%s: status %d, want %d: %.500s", what, r.Status, code, r.Raw)
	}
	return r
}

// waitStatus long-polls a task (every poll validated) until it has status want.
func (c *oaClient) waitStatus(id, want string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last map[string]any
	// A long poll answers at once for a terminal task but holds while a task stays as it
	// is, so it is only used to wait for a terminal status; others are polled.
	q := ""
	if store.Terminal(want) {
		q = "?wait=2"
	}
	for time.Now().Before(deadline) {
		r := c.want(c.call("GET", "/v1/tasks/"+id+q, nil), 200, "get task")
		last = r.task()
		if last["status"] == want {
			return last
		}
		if q == "" {
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.t.Fatalf("task %s: status %v, want %s", id, last["status"], want)
	return nil
}

func oaStart(t *testing.T, args ...string) *oaClient {
	t.Helper()
	sp := oaLoad(t)
	return &oaClient{t: t, s: startServer(t, "", args...), sp: sp}
}

// oaTarget is an httptest server that answers with h (nil: 200 "ok") and records requests.
type oaTarget struct {
	URL  string
	mu   sync.Mutex
	hits []*http.Request
	body [][]byte
}

func oaNewTarget(t *testing.T, h http.HandlerFunc) *oaTarget {
	t.Helper()
	tg := &oaTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.hits = append(tg.hits, r.Clone(r.Context()))
		tg.body = append(tg.body, b)
		tg.mu.Unlock()
		if h == nil {
			io.WriteString(w, `{"ok":true}`)
			return
		}
		h(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	tg.URL = srv.URL
	return tg
}

const oaHex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	sp := oaLoad(t)
	if v := sp.raw["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}
	sp.mu.Lock()
	ok, errs := sp.v.ValidateDocument()
	sp.mu.Unlock()
	if !ok {
		t.Fatalf("%s is not a valid OpenAPI 3.1 document:%s", oaFile, oaFormat(errs))
	}
	if !bytes.Equal(openAPIDoc, sp.bytes) {
		t.Errorf("the embedded document differs from %s", oaFile)
	}

	// Every operation has a unique operationId and documents its responses.
	seen := map[string]string{}
	for _, op := range oaOperations(sp.raw, "paths") {
		o := op.op
		id, _ := o["operationId"].(string)
		if id == "" {
			t.Errorf("%s %s has no operationId", op.method, op.path)
		} else if prev, dup := seen[id]; dup {
			t.Errorf("operationId %s is used by %s and %s %s", id, prev, op.method, op.path)
		}
		seen[id] = op.method + " " + op.path
		if _, ok := o["responses"].(map[string]any); !ok {
			t.Errorf("%s %s documents no responses", op.method, op.path)
		}
	}
	for _, ev := range []string{"task.completed", "task.failed", "task.timeout", "task.cancelled"} {
		if sp.model.Webhooks == nil || sp.model.Webhooks.GetOrZero(ev) == nil {
			t.Errorf("webhooks has no %s", ev)
		}
	}

	// The schemas name exactly the JSON fields of the Go types they describe.
	schemas := oaGet(sp.raw, "components", "schemas").(map[string]any)
	oaSameFields(t, schemas, "Task", reflect.TypeFor[TaskJSON](), true)
	oaSameFields(t, schemas, "ListedTask", reflect.TypeFor[listedTask](), false)
	oaSameFields(t, schemas, "CreateTaskRequest", reflect.TypeFor[createRequest](), false)
	oaSameFields(t, schemas, "PollConfig", reflect.TypeFor[providers.PollConfig](), false)
	oaSameFields(t, schemas, "Provider", reflect.TypeFor[providers.Provider](), false)
	oaSameFields(t, schemas, "SignalRequest", reflect.TypeFor[signalBody](), false)
	oaSameFields(t, schemas, "StoredSignal", reflect.TypeFor[signalBody](), false)
	oaSameFields(t, schemas, "CallResult", reflect.TypeFor[callResult](), false)
	oaSameFields(t, schemas, "WebhookState", reflect.TypeFor[webhookState](), false)
	oaSameFields(t, schemas, "VaultToken", reflect.TypeFor[tokenJSON](), false)
	type attemptJSON struct { // as getAttempts shows a store.Attempt
		store.Attempt
		StartedAt string `json:"startedAt"`
	}
	oaSameFields(t, schemas, "Attempt", reflect.TypeFor[attemptJSON](), false)

	// The provider enum of CreateTaskRequest lists the built-in templates.
	var ids []any
	for _, p := range providers.All() {
		ids = append(ids, p.ID)
	}
	if enum := oaGet(schemas, "CreateTaskRequest", "properties", "provider", "enum"); !reflect.DeepEqual(enum, ids) {
		t.Errorf("CreateTaskRequest.provider enum = %v, want the templates %v", enum, ids)
	}
	if enum := oaGet(schemas, "TaskStatus", "enum"); !reflect.DeepEqual(enum, oaAnys(allStatuses)) {
		t.Errorf("TaskStatus enum = %v, want %v", enum, allStatuses)
	}
}

func oaAnys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// oaGet walks a decoded JSON document.
func oaGet(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

type oaOp struct {
	path, method string
	op           map[string]any
}

// oaOperations lists the operations under paths (or webhooks), methods in upper case.
func oaOperations(raw map[string]any, section string) []oaOp {
	var out []oaOp
	items, _ := raw[section].(map[string]any)
	for _, p := range slices.Sorted(maps.Keys(items)) {
		item := items[p].(map[string]any)
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			if op, ok := item[m].(map[string]any); ok {
				out = append(out, oaOp{path: p, method: strings.ToUpper(m), op: op})
			}
		}
	}
	return out
}

// oaJSONFields returns the JSON names of a struct's fields (embedded structs flattened,
// later fields shadowing earlier ones, "-" skipped) and whether each may be null.
func oaJSONFields(rt reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range rt.NumField() {
		if f := rt.Field(i); f.Anonymous && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, oaJSONFields(f.Type))
		}
	}
	for i := range rt.NumField() { // the outer struct's fields shadow embedded ones
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous || !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type.Kind() == reflect.Pointer || f.Type == reflect.TypeFor[json.RawMessage]()
	}
	return out
}

// oaSameFields checks that schema name has exactly the JSON fields of rt; with exact, also
// that every field is required and may be null exactly when the Go field can be nil.
func oaSameFields(t *testing.T, schemas map[string]any, name string, rt reflect.Type, exact bool) {
	t.Helper()
	s, _ := schemas[name].(map[string]any)
	props, _ := s["properties"].(map[string]any)
	fields := oaJSONFields(rt)
	for f := range fields {
		if _, ok := props[f]; !ok {
			t.Errorf("schema %s lacks field %q of %s", name, f, rt)
		}
	}
	for p := range props {
		if _, ok := fields[p]; !ok {
			t.Errorf("schema %s has field %q, which %s does not have", name, p, rt)
		}
	}
	if s["additionalProperties"] != false {
		t.Errorf("schema %s should set additionalProperties: false", name)
	}
	if !exact {
		return
	}
	req := map[string]bool{}
	for _, r := range s["required"].([]any) {
		req[r.(string)] = true
	}
	for f, nullable := range fields {
		if !req[f] {
			t.Errorf("schema %s: %q is always present but not required", name, f)
		}
		if p, ok := props[f].(map[string]any); ok {
			if got := oaAllowsNull(schemas, p); got != nullable {
				t.Errorf("schema %s: %q allows null = %v, but the Go field can be nil = %v", name, f, got, nullable)
			}
		}
	}
}

// oaAllowsNull reports whether a schema accepts null.
func oaAllowsNull(schemas map[string]any, s map[string]any) bool {
	if ref, ok := s["$ref"].(string); ok {
		target, _ := schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		return oaAllowsNull(schemas, target)
	}
	switch ty := s["type"].(type) {
	case string:
		return ty == "null"
	case []any:
		return slices.Contains(ty, any("null"))
	}
	for _, k := range []string{"oneOf", "anyOf"} {
		if alts, ok := s[k].([]any); ok {
			for _, a := range alts {
				if oaAllowsNull(schemas, a.(map[string]any)) {
					return true
				}
			}
			return false
		}
	}
	if c, ok := s["const"]; ok {
		return c == nil
	}
	return true // no type: any JSON value
}

var oaRouteRE = regexp.MustCompile(`\b(?:api|open|mux\.Handle(?:Func)?)\(\s*"([A-Z]+) (/[^"]*)"`)

// TestOpenAPIRoutes checks that the document and the server agree on the routes: each
// method-qualified pattern registered in routes() is documented and each documented
// operation is routed, in the source and on the running binary.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	sp := oaLoad(t)
	documented := map[string]bool{}
	for _, op := range oaOperations(sp.raw, "paths") {
		documented[op.method+" "+op.path] = true
	}

	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	start := strings.Index(body, "func (a *App) routes() http.Handler {")
	if start < 0 {
		t.Fatal("server.go has no routes()")
	}
	body = body[start:]
	if end := strings.Index(body, "\n}\n"); end > 0 {
		body = body[:end]
	}
	routed := map[string]bool{}
	for _, m := range oaRouteRE.FindAllStringSubmatch(body, -1) {
		routed[m[1]+" "+m[2]] = true
	}
	if len(routed) < 15 {
		t.Fatalf("found only %d routes in routes(): %v", len(routed), routed)
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is registered in server.go but not documented in %s", r, oaFile)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("%s documents %s, which routes() does not register", oaFile, d)
		}
	}

	// Probe the binary: no documented operation may fall through to the catch-all.
	s := startServer(t, "")
	probe := func(method, p string) (int, string) {
		req, _ := http.NewRequest(method, s.base+p, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, p, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, b := probe("DELETE", "/v1/tasks"); code != 404 || !strings.Contains(b, "No route for") {
		t.Fatalf("DELETE /v1/tasks: %d %.200s; the probe needs the catch-all's \"No route for\" 404", code, b)
	}
	fill := strings.NewReplacer(
		"/v1/tokens/{id}", "/v1/tokens/tok_"+strings.Repeat("A", 24),
		"/v1/callbacks/{id}", "/v1/callbacks/"+oaHex64,
		"{token}", oaHex64,
		"{id}", uuid.NewString())
	for d := range documented {
		method, p, _ := strings.Cut(d, " ")
		code, b := probe(method, fill.Replace(p))
		switch {
		case code == http.StatusMethodNotAllowed || strings.Contains(b, "No route for"):
			t.Errorf("documented %s is not routed by the server: %d %.200s", d, code, b)
		case !strings.HasPrefix(p, "/v1/") && code != 200:
			t.Errorf("%s: %d %.200s, want 200", d, code, b)
		}
	}
}

// TestOpenAPITasks exercises the task operations and their errors.
func TestOpenAPITasks(t *testing.T) {
	t.Parallel()
	c := oaStart(t, "--max-body", "65536")
	ok := oaNewTarget(t, nil)
	fail := oaNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})

	// Create, replay with the same Idempotency-Key, and conflict with another body.
	create := map[string]any{"targetUrl": ok.URL + "/plain", "method": "PUT", "headers": map[string]string{"X-Trace": "1"},
		"body": "hello", "timeout": 5, "maxRetries": 0, "retryBackoff": "linear", "priority": 7}
	r := c.want(c.call("POST", "/v1/tasks", create, "Idempotency-Key", "oa-1"), 201, "create")
	id := r.str("task", "id")
	c.want(c.call("POST", "/v1/tasks", create, "Idempotency-Key", "oa-1"), 200, "idempotent replay")
	create["priority"] = 8
	c.want(c.call("POST", "/v1/tasks", create, "Idempotency-Key", "oa-1"), 409, "same key, other body")

	done := c.waitStatus(id, "completed")
	if res, _ := done["result"].(map[string]any); res["statusCode"] != float64(200) {
		t.Errorf("result = %v, want the call's 200", done["result"])
	}
	r = c.want(c.call("GET", "/v1/tasks/"+id+"/attempts", nil), 200, "attempts")
	if as, _ := r.Body["attempts"].([]any); len(as) != 1 {
		t.Errorf("attempts = %s, want one", r.Raw)
	}
	c.want(c.call("GET", "/v1/tasks?status=completed&status=pending&limit=5&offset=0&createdAfter=2020-01-01T00:00:00Z&targetHost=127.0.0.1", nil), 200, "list")
	c.want(c.call("GET", "/v1/tasks", nil, "X-API-Key", "", "Authorization", "Bearer "+c.s.key), 200, "list with a bearer key")

	// A failing call: failed, with the attempt's error; retry, and the state errors.
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": fail.URL, "maxRetries": 0}), 201, "create failing")
	fid := r.str("task", "id")
	c.waitStatus(fid, "failed")
	c.want(c.call("GET", "/v1/tasks/"+fid+"/attempts", nil), 200, "attempts of a failed task")
	c.want(c.call("POST", "/v1/tasks/"+fid+"/retry", nil), 200, "retry")
	c.want(c.call("POST", "/v1/tasks/"+id+"/cancel", nil), 409, "cancel completed")
	c.want(c.call("POST", "/v1/tasks/"+id+"/retry", nil), 409, "retry completed")
	c.want(c.call("POST", "/v1/tasks/"+id+"/signal", map[string]any{"status": "completed"}), 409, "signal a task that does not wait")

	// Delayed (through the callbackUrl alias), then cancelled.
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"callbackUrl": ok.URL, "delay": 3600, "onCompleteUrl": ok.URL + "/hook"}), 201, "create delayed")
	c.want(c.call("POST", "/v1/tasks/"+r.str("task", "id")+"/cancel", nil), 200, "cancel delayed")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "delayUntil": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}), 201, "create with delayUntil")

	// Polling tasks: a template with an override, and a full pollConfig.
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "delay": 3600, "provider": "replicate",
		"pollConfig": map[string]any{"interval": 5}}), 201, "create with provider")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "delay": 3600, "pollConfig": map[string]any{
		"urlTemplate": ok.URL + "/status/{startResult.body.id}", "interval": 2, "statusPath": "state",
		"doneValues": []string{"done"}, "failValues": []string{"error"}, "resultPath": "output", "maxDuration": 60}}), 201, "create with pollConfig")

	// Errors.
	c.want(c.bad("GET", "/v1/tasks", nil, "X-API-Key", ""), 401, "no key")
	c.want(c.call("GET", "/v1/tasks", nil, "X-API-Key", "async_"+strings.Repeat("x", 49)), 401, "wrong key")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetURL": ok.URL}), 400, "unknown field")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "priority": 11}), 400, "priority out of range")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "method": "TRACE"}), 400, "bad method")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "callbackUrl": ok.URL}), 400, "targetUrl and callbackUrl")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "delay": 1, "delayUntil": "2030-01-01T00:00:00Z"}), 400, "delay and delayUntil")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "heartbeatTimeout": 5}), 400, "heartbeatTimeout without waitForSignal")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "pollConfig": map[string]any{"interval": 5}}), 400, "incomplete pollConfig")
	c.want(c.bad("POST", "/v1/tasks", map[string]any{"body": "x"}), 400, "no targetUrl")
	c.want(c.bad("POST", "/v1/tasks", `{"targetUrl": `), 400, "truncated JSON")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://10.1.2.3/hook"}), 422, "private target")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "headers": map[string]string{"Authorization": "tok_" + strings.Repeat("Z", 24)}}), 400, "unknown vault token")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "body": strings.Repeat("x", 70000)}), 413, "body over --max-body")
	c.want(c.bad("GET", "/v1/tasks/not-a-uuid", nil), 400, "malformed id")
	c.want(c.call("GET", "/v1/tasks/"+uuid.Must(uuid.NewV7()).String(), nil), 404, "unknown task")
	c.want(c.call("GET", "/v1/tasks/"+uuid.Must(uuid.NewV7()).String()+"/attempts", nil), 404, "attempts of an unknown task")
	c.want(c.bad("GET", "/v1/tasks?limit=0", nil), 400, "limit 0")
	c.want(c.bad("GET", "/v1/tasks?status=bogus", nil), 400, "unknown status")
	c.want(c.bad("GET", "/v1/tasks?createdAfter=yesterday", nil), 400, "bad createdAfter")
	c.want(c.bad("GET", "/v1/tasks/"+id+"?wait=-1", nil), 400, "negative wait")

	// Another team's task is 403.
	out, err := exec.Command(binPath, "--db", c.s.db, "teams", "create", "oa-other").Output()
	if err != nil {
		t.Fatalf("teams create: %v", err)
	}
	other := keyRE.FindString(string(out))
	if other == "" {
		t.Fatalf("teams create printed no key: %q", out)
	}
	c.want(c.call("GET", "/v1/tasks/"+id, nil, "X-API-Key", other), 403, "another team's task")
	c.want(c.call("POST", "/v1/tasks/"+id+"/cancel", nil, "X-API-Key", other), 403, "cancel another team's task")
}

// TestOpenAPISignals exercises wait/signal, heartbeats, signals by id, early signals and
// provider callbacks.
func TestOpenAPISignals(t *testing.T) {
	t.Parallel()
	c := oaStart(t)
	ok := oaNewTarget(t, nil)

	r := c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "waitForSignal": true, "maxWaitTime": 60,
		"heartbeatTimeout": 30}), 201, "create wait task")
	id, tok := r.str("task", "id"), r.str("signalToken")
	c.waitStatus(id, "waiting")
	c.want(c.call("GET", "/v1/signals/"+tok, nil, "X-API-Key", ""), 200, "check token")
	c.want(c.call("POST", "/v1/signals/"+tok+"/heartbeat", map[string]any{"progress": map[string]any{"pct": 50}}, "X-API-Key", ""), 200, "heartbeat")
	c.want(c.call("POST", "/v1/signals/"+tok+"/heartbeat", nil, "X-API-Key", ""), 200, "heartbeat without a body")
	sig := map[string]any{"status": "completed", "result": map[string]any{"approved": true}}
	c.want(c.call("POST", "/v1/signals/"+tok, sig, "X-API-Key", ""), 200, "signal")
	r = c.want(c.call("POST", "/v1/signals/"+tok, sig, "X-API-Key", ""), 200, "same signal again")
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated signal lacks Idempotent-Replayed: true")
	}
	c.want(c.call("POST", "/v1/signals/"+tok, map[string]any{"status": "failed", "error": "no"}, "X-API-Key", ""), 409, "other signal")
	c.want(c.call("POST", "/v1/signals/"+tok+"/heartbeat", nil, "X-API-Key", ""), 409, "heartbeat after the signal")
	c.want(c.call("GET", "/v1/signals/"+tok, nil, "X-API-Key", ""), 200, "check a spent token")
	r = c.want(c.call("GET", "/v1/tasks/"+id+"/events", nil), 200, "events")
	if es, _ := r.Body["events"].([]any); len(es) < 3 {
		t.Errorf("events after two heartbeats and a signal: %s", r.Raw)
	}

	// Signal by id before the call: buffered (202); cancel; retry with a new token.
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "waitForSignal": true, "delay": 3600}), 201, "create delayed wait task")
	did := r.str("task", "id")
	early := map[string]any{"status": "failed", "error": "Rejected"}
	r = c.want(c.call("POST", "/v1/tasks/"+did+"/signal", early), 202, "early signal")
	if r.Body["buffered"] != true {
		t.Errorf("early signal: %s, want buffered: true", r.Raw)
	}
	c.want(c.call("POST", "/v1/tasks/"+did+"/signal", early), 202, "early signal again")
	c.want(c.call("POST", "/v1/tasks/"+did+"/signal", map[string]any{"status": "completed"}), 409, "a different early signal")
	c.want(c.call("POST", "/v1/tasks/"+did+"/cancel", nil), 200, "cancel")
	r = c.want(c.call("POST", "/v1/tasks/"+did+"/retry", nil), 200, "retry wait task")
	if r.str("signalToken") == "" {
		t.Errorf("retry of a wait task: %s, want a new signalToken", r.Raw)
	}
	c.waitStatus(did, "waiting")
	c.want(c.call("POST", "/v1/tasks/"+did+"/signal", map[string]any{"status": "failed"}), 200, "signal by id")
	c.want(c.call("GET", "/v1/tasks/"+did+"/events", nil), 200, "events with an early signal")
	c.want(c.call("GET", "/v1/tasks/"+uuid.Must(uuid.NewV7()).String()+"/events", nil), 404, "events of an unknown task")

	// Token errors.
	c.want(c.bad("GET", "/v1/signals/not-hex", nil, "X-API-Key", ""), 400, "malformed token")
	c.want(c.bad("POST", "/v1/signals/not-hex", sig, "X-API-Key", ""), 400, "signal with a malformed token")
	c.want(c.call("GET", "/v1/signals/"+oaHex64, nil, "X-API-Key", ""), 404, "unknown token")
	c.want(c.call("POST", "/v1/signals/"+oaHex64, sig, "X-API-Key", ""), 404, "signal with an unknown token")
	c.want(c.call("POST", "/v1/signals/"+oaHex64+"/heartbeat", nil, "X-API-Key", ""), 404, "heartbeat with an unknown token")
	c.want(c.bad("POST", "/v1/signals/"+oaHex64, map[string]any{"status": "done"}, "X-API-Key", ""), 400, "bad signal status")
	c.want(c.bad("POST", "/v1/signals/"+oaHex64+"/heartbeat", map[string]any{"pct": 1}, "X-API-Key", ""), 400, "unknown heartbeat field")

	// Provider callbacks: answered after the call, buffered before it, spent after use.
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "body": `{"webhook":"{asyncqueue_callback_url}"}`}), 201, "create callback task")
	cid, cbURL := r.str("task", "id"), r.str("callbackUrl")
	if cbURL == "" {
		t.Fatalf("create with the placeholder: %s, want a callbackUrl", r.Raw)
	}
	c.waitStatus(cid, "waiting")
	cb := "/v1/callbacks/" + path.Base(cbURL)
	c.want(c.call("POST", cb, map[string]any{"output": "https://cdn.example/x.png"}, "X-API-Key", ""), 200, "callback")
	c.want(c.call("POST", cb, map[string]any{"output": "again"}, "X-API-Key", ""), 409, "callback again")
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL + "?cb={asyncqueue_callback_url}", "delay": 3600}), 201, "create delayed callback task")
	u, err := url.Parse(r.str("callbackUrl"))
	if err != nil {
		t.Fatal(err)
	}
	c.want(c.call("POST", u.Path, []any{1, 2}, "X-API-Key", ""), 202, "early callback")
	c.want(c.call("GET", "/v1/tasks/"+cid+"/events", nil), 200, "events of a called-back task")
	c.want(c.call("GET", "/v1/tasks/"+r.str("task", "id")+"/events", nil), 200, "events with an early callback")
	c.want(c.call("POST", "/v1/callbacks/"+oaHex64, map[string]any{}, "X-API-Key", ""), 404, "unknown callback")
	c.want(c.bad("POST", "/v1/callbacks/"+oaHex64, "not json", "X-API-Key", ""), 400, "callback that is not JSON")
}

// TestOpenAPIVaultAndMeta exercises the Token Vault, the webhook secret, providers,
// health, metrics and the served document.
func TestOpenAPIVaultAndMeta(t *testing.T) {
	t.Parallel()
	c := oaStart(t, "--signal-rate-limit", "2")
	r := c.want(c.call("POST", "/v1/tokens", map[string]any{"name": "replicate", "value": "r8_secret"}), 201, "create token")
	tid := r.str("token", "id")
	c.want(c.call("GET", "/v1/tokens", nil), 200, "list tokens")
	c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600,
		"headers": map[string]string{"Authorization": tid}}), 201, "create with a vault reference")
	c.want(c.call("DELETE", "/v1/tokens/"+tid, nil), 200, "delete token")
	c.want(c.call("DELETE", "/v1/tokens/"+tid, nil), 404, "delete token again")
	c.want(c.bad("DELETE", "/v1/tokens/nope", nil), 400, "malformed token id")
	c.want(c.bad("POST", "/v1/tokens", map[string]any{"name": "", "value": "x"}), 400, "empty name")
	c.want(c.bad("POST", "/v1/tokens", map[string]any{"name": "n"}), 400, "no value")
	c.want(c.bad("POST", "/v1/tokens", map[string]any{"name": "n", "value": "a\nb"}), 400, "value with a line break")
	c.want(c.bad("GET", "/v1/tokens", nil, "X-API-Key", ""), 401, "tokens without a key")

	c.want(c.call("GET", "/v1/webhook-secret", nil), 200, "webhook secret")
	r = c.want(c.call("POST", "/v1/webhook-secret/rotate", nil), 200, "rotate")
	if r.str("previousSecretExpiresAt") == "" {
		t.Errorf("rotate: %s, want previousSecretExpiresAt", r.Raw)
	}
	c.want(c.call("GET", "/v1/webhook-secret", nil), 200, "webhook secret after rotation")
	c.want(c.bad("POST", "/v1/webhook-secret/rotate", nil, "X-API-Key", ""), 401, "rotate without a key")

	r = c.want(c.call("GET", "/v1/providers", nil, "X-API-Key", ""), 200, "providers")
	if ps, _ := r.Body["providers"].([]any); len(ps) != len(providers.All()) {
		t.Errorf("providers: %d, want %d", len(ps), len(providers.All()))
	}
	r = c.want(c.call("GET", "/v1/openapi.json", nil, "X-API-Key", ""), 200, "openapi.json")
	if !bytes.Equal(r.Raw, c.sp.bytes) {
		t.Errorf("GET /v1/openapi.json does not serve %s", oaFile)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /v1/openapi.json: Content-Type %q, want application/json", ct)
	}
	// The signal endpoints' per-IP limit (2 a minute here): 429 with Retry-After.
	for range 2 {
		c.want(c.call("GET", "/v1/signals/"+oaHex64, nil, "X-API-Key", ""), 404, "unknown token")
	}
	r = c.want(c.call("GET", "/v1/signals/"+oaHex64, nil, "X-API-Key", ""), 429, "over the signal rate limit")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	// The per-team API rate limit: X-RateLimit-* headers, then 429 with Retry-After.
	rl := oaStart(t, "--rate-limit", "2/min")
	for range 2 {
		r = rl.want(rl.call("GET", "/v1/tokens", nil), 200, "tokens within the team's rate limit")
		if r.Header.Get("X-RateLimit-Limit") != "2" {
			t.Errorf("--rate-limit 2/min: X-RateLimit-Limit %q, want 2", r.Header.Get("X-RateLimit-Limit"))
		}
	}
	rl.want(rl.call("GET", "/v1/tokens", nil), 429, "over the team's rate limit")

	c.want(c.call("GET", "/healthz", nil, "X-API-Key", ""), 200, "healthz")
	c.want(c.call("GET", "/readyz", nil, "X-API-Key", ""), 200, "readyz")
	c.want(c.call("GET", "/metrics", nil, "X-API-Key", ""), 200, "metrics")
}

// TestOpenAPIWebhooks checks the onCompleteUrl deliveries of each event, signatures
// included, against the document's webhooks.
func TestOpenAPIWebhooks(t *testing.T) {
	t.Parallel()
	c := oaStart(t)
	hooks := oaNewTarget(t, nil)
	ok := oaNewTarget(t, nil)
	fail := oaNewTarget(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })

	r := c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "onCompleteUrl": hooks.URL + "/completed"}), 201, "create")
	c.waitStatus(r.str("task", "id"), "completed")
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": fail.URL, "maxRetries": 0, "onCompleteUrl": hooks.URL + "/failed"}), 201, "create failing")
	c.waitStatus(r.str("task", "id"), "failed")
	c.want(c.call("POST", "/v1/webhook-secret/rotate", nil), 200, "rotate") // two signatures from here on
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "waitForSignal": true, "maxWaitTime": 1,
		"onCompleteUrl": hooks.URL + "/timeout"}), 201, "create wait task")
	tid := r.str("task", "id")
	r = c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": ok.URL, "delay": 3600, "onCompleteUrl": hooks.URL + "/cancelled"}), 201, "create delayed")
	c.want(c.call("POST", "/v1/tasks/"+r.str("task", "id")+"/cancel", nil), 200, "cancel")
	c.waitStatus(tid, "timeout")

	// Each task's webhook arrives once the task is terminal; wait for all four.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hooks.mu.Lock()
		n := len(hooks.hits)
		hooks.mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhooks after 10 s, want 4", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	got := map[string]bool{}
	for i, h := range hooks.hits {
		event := "task." + strings.TrimPrefix(h.URL.Path, "/")
		got[event] = true
		item := c.sp.model.Webhooks.GetOrZero(event)
		if item == nil {
			t.Errorf("webhook to %s: no webhook %s in the document", h.URL.Path, event)
			continue
		}
		body := hooks.body[i]
		req := httptest.NewRequest(h.Method, h.URL.Path, bytes.NewReader(body))
		req.Header = h.Header.Clone()
		c.sp.mu.Lock()
		valid, errs := c.sp.v.ValidateHttpRequestSyncWithPathItem(req, item, event)
		c.sp.mu.Unlock()
		if !valid {
			t.Errorf("webhook %s does not match %s:%s\nheaders: %v\nbody: %.1000s", event, oaFile, oaFormat(errs), h.Header, body)
		}
		var payload struct{ Event string }
		json.Unmarshal(body, &payload)
		if payload.Event != event || h.Header.Get("X-AsyncQueue-Event") != event {
			t.Errorf("webhook to %s: event %q, header %q, want %s", h.URL.Path, payload.Event, h.Header.Get("X-AsyncQueue-Event"), event)
		}
	}
	if len(got) != 4 {
		t.Errorf("webhook events %v, want the four of the document", slices.Sorted(maps.Keys(got)))
	}
}

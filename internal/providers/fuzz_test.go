package providers

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// FuzzTemplatePath fuzzes the polling templates: dot paths (Lookup), URL templates with
// {startResult.body.<path>} and {startResult.headers.<name>} placeholders (Expand), and the
// poll-response evaluation. Invariants: no panic; an expanded URL is absolute http(s);
// Expand and Lookup agree on which paths exist; and a value from the start response can
// never change the host, add path segments, query parameters or a fragment, wherever it
// is inserted after the start of the template.
func FuzzTemplatePath(f *testing.F) {
	f.Add("https://api.example.com/v1/p/{startResult.body.id}", "urls.get", "abc", []byte(sampleDoc))
	f.Add("{startResult.body.urls.get}", "output.0.url", "../admin", []byte(sampleDoc))
	f.Add("https://h.example/{startResult.headers.X-Job-Id}?q={startResult.body.n}", "matrix.1.0", "x?y=1&z=2#f", []byte(sampleDoc))
	f.Add("https://h.example/{startResult.body.a..b}", "a..b", "%2e%2e/", []byte(`{"a": {"": 1}}`))
	f.Add("{startResult.body.x", ".x", "a b", []byte(`[1, 2, 3]`))
	f.Add("https://h.example/}{", "0", "\x00\r\n", []byte(`null`))
	f.Add("https://h.example/{startResult.body.big}", "big", "", []byte(`{"big": 1e308, "neg": -0}`))
	f.Add("https://h.example/{unknown.thing}", strings.Repeat("a.", 300), "é/é", []byte(`{"a":`))
	f.Add("{startResult.body.u}", "u", "javascript:alert(1)//", []byte(`{"u": "https://a.example/x"}`))

	f.Fuzz(func(t *testing.T, tmpl, path, value string, body []byte) {
		var doc, docNum any
		if json.Unmarshal(body, &doc) != nil {
			doc = nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&docNum) != nil {
			docNum = nil
		}
		headers := map[string]string{"X-Job-Id": value, "Location": value}

		// Arbitrary templates and documents.
		for _, d := range []any{doc, docNum} {
			v, ok := Lookup(d, path)
			if ok && path != "" && checkPath(path) != nil {
				t.Fatalf("Lookup accepted the invalid path %q", path)
			}
			_ = v
			if out, err := Expand(tmpl, d, headers); err == nil && !absoluteHTTP(out) {
				t.Fatalf("Expand(%q) = %q, not an absolute http(s) URL", tmpl, out)
			}
			// Expand and Lookup agree on a body placeholder.
			out, err := Expand("https://h.example/x/{startResult.body."+path+"}", d, nil)
			if err == nil {
				lv, ok := Lookup(d, path)
				s, serr := scalarText(lv)
				if !ok || serr != nil || s == "" {
					t.Fatalf("Expand used path %q (%q) that Lookup gives as %v, %v", path, out, lv, ok)
				}
			}
			cfg := PollConfig{URLTemplate: "https://h.example/{startResult.body.id}", Interval: 1,
				StatusPath: "status", DoneValues: []string{"done", value}, FailValues: []string{"failed"},
				ResultPath: "output", ErrorPath: "error"}
			if path != "" && checkPath(path) == nil {
				cfg.StatusPath, cfg.ResultPath, cfg.ErrorPath = path, path, path
			}
			_ = cfg.Evaluate(200, d)
			_ = cfg.Evaluate(202, d)
			_, _ = cfg.Result(d)
			_ = cfg.Validate()
		}

		// A value inserted after the start of a template stays inside its path segment or
		// query value.
		if value == "" {
			return
		}
		start := map[string]any{"id": value}
		out, err := Expand("https://api.example.com/jobs/{startResult.body.id}/status", start, nil)
		if err != nil {
			t.Fatalf("path template with id %q: %v", value, err)
		}
		u, err := url.Parse(out)
		if err != nil || u.Host != "api.example.com" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			t.Fatalf("id %q gave %q (%v)", value, out, err)
		}
		segs := strings.Split(strings.TrimPrefix(out, "https://api.example.com"), "/")
		if len(segs) != 4 || segs[1] != "jobs" || segs[3] != "status" {
			t.Fatalf("id %q changed the path: %q", value, out)
		}
		if got, err := url.PathUnescape(segs[2]); err != nil || got != value {
			t.Fatalf("id %q came out as %q (%v)", value, got, err)
		}

		out, err = Expand("https://api.example.com/jobs?id={startResult.headers.x-job-id}&v=1", nil, headers)
		if err != nil {
			t.Fatalf("query template with header %q: %v", value, err)
		}
		u, err = url.Parse(out)
		if err != nil || u.Host != "api.example.com" || u.Path != "/jobs" || u.Fragment != "" {
			t.Fatalf("header %q gave %q (%v)", value, out, err)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) != 2 || len(q["id"]) != 1 || q.Get("id") != value || q.Get("v") != "1" {
			t.Fatalf("header %q changed the query: %q (%v)", value, out, err)
		}
	})
}

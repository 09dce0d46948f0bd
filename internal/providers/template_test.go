package providers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const sampleDoc = `{
	"id": "abc",
	"status": "processing",
	"n": 42,
	"big": 12345678901234,
	"frac": 1.5,
	"ok": true,
	"nothing": null,
	"empty": "",
	"urls": {"get": "https://api.example.com/v1/p/abc", "cancel": "https://api.example.com/v1/p/abc/cancel"},
	"output": [
		{"url": "https://cdn.example.com/0.png", "tags": ["a", "b"]},
		{"url": "https://cdn.example.com/1.png"}
	],
	"matrix": [[1, 2], [3, 4]],
	"7": "numeric key",
	"a": {"b": {"c": {"d": "deep"}}},
	"weird": "a/b?c=d&e f#g%h"
}`

func TestLookup(t *testing.T) {
	t.Parallel()
	doc := mustJSON(t, sampleDoc)
	tests := []struct {
		path string
		want any
		ok   bool
	}{
		{"id", "abc", true},
		{"n", 42.0, true},
		{"ok", true, true},
		{"nothing", nil, true},
		{"empty", "", true},
		{"urls.get", "https://api.example.com/v1/p/abc", true},
		{"a.b.c.d", "deep", true},
		{"a.b.c", map[string]any{"d": "deep"}, true},
		{"output.0.url", "https://cdn.example.com/0.png", true},
		{"output.1.url", "https://cdn.example.com/1.png", true},
		{"output.0.tags.1", "b", true},
		{"matrix.1.0", 3.0, true},
		{"7", "numeric key", true}, // a numeric segment on an object is a key
		{"output.2.url", nil, false},
		{"output.-1", nil, false},
		{"output.+0", nil, false},
		{"output.x", nil, false},
		{"missing", nil, false},
		{"urls.missing", nil, false},
		{"id.x", nil, false}, // a string has no fields
		{"n.0", nil, false},  // neither has a number
		{"nothing.x", nil, false},
		{"a..b", nil, false},
		{".id", nil, false},
		{"id.", nil, false},
		{"i d", nil, false},
	}
	for _, tt := range tests {
		got, ok := Lookup(doc, tt.path)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lookup(%q) = %#v, %v; want %#v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
	// The empty path is the whole document.
	if got, ok := Lookup(doc, ""); !ok || !reflect.DeepEqual(got, doc) {
		t.Error("Lookup(doc, \"\") is not the document")
	}
	// Top-level arrays and scalars.
	if got, ok := Lookup(mustJSON(t, `[{"a":1}]`), "0.a"); !ok || got != 1.0 {
		t.Errorf("top-level array: %v, %v", got, ok)
	}
	if _, ok := Lookup(nil, "a"); ok {
		t.Error("Lookup(nil, a) found something")
	}
	if _, ok := Lookup("text", "a"); ok {
		t.Error("Lookup on a string found something")
	}
}

func TestLookupJSONNumber(t *testing.T) {
	t.Parallel()
	dec := json.NewDecoder(strings.NewReader(`{"id": 12345678901234567890}`))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	got, err := Expand("https://x.test/p/{startResult.body.id}", doc, nil)
	if err != nil || got != "https://x.test/p/12345678901234567890" {
		t.Errorf("Expand with json.Number = %q, %v", got, err)
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	doc := mustJSON(t, sampleDoc)
	headers := map[string]string{
		"Location":     "https://api.example.com/jobs/9",
		"X-Request-Id": "req 1/2",
		"X-Empty":      "",
	}
	tests := []struct {
		name string
		tmpl string
		want string
		err  string // exact error text when non-empty
	}{
		{"whole URL from body", "{startResult.body.urls.get}", "https://api.example.com/v1/p/abc", ""},
		{"whole URL plus suffix", "{startResult.body.urls.get}/status", "https://api.example.com/v1/p/abc/status", ""},
		{"id in path", "https://api.example.com/v1/tasks/{startResult.body.id}", "https://api.example.com/v1/tasks/abc", ""},
		{"nested", "https://x.test/{startResult.body.a.b.c.d}", "https://x.test/deep", ""},
		{"array element", "https://x.test/img?u={startResult.body.output.1.url}", "https://x.test/img?u=https%3A%2F%2Fcdn.example.com%2F1.png", ""},
		{"number", "https://x.test/n/{startResult.body.n}", "https://x.test/n/42", ""},
		{"big number not in exponent form", "https://x.test/n/{startResult.body.big}", "https://x.test/n/12345678901234", ""},
		{"fraction", "https://x.test/n/{startResult.body.frac}", "https://x.test/n/1.5", ""},
		{"bool", "https://x.test/b/{startResult.body.ok}", "https://x.test/b/true", ""},
		{"two placeholders", "https://x.test/{startResult.body.id}/{startResult.body.status}", "https://x.test/abc/processing", ""},
		{"path escaping", "https://x.test/p/{startResult.body.weird}", "https://x.test/p/a%2Fb%3Fc=d&e%20f%23g%25h", ""},
		{"query escaping", "https://x.test/p?id={startResult.body.weird}&x=1", "https://x.test/p?id=a%2Fb%3Fc%3Dd%26e+f%23g%25h&x=1", ""},
		{"query after a leading URL", "{startResult.body.urls.get}?id={startResult.body.weird}", "https://api.example.com/v1/p/abc?id=a%2Fb%3Fc%3Dd%26e+f%23g%25h", ""},
		{"header", "{startResult.headers.Location}", "https://api.example.com/jobs/9", ""},
		{"header any case", "{startResult.headers.location}/status", "https://api.example.com/jobs/9/status", ""},
		{"header escaped", "https://x.test/r/{startResult.headers.x-request-id}", "https://x.test/r/req%201%2F2", ""},
		{"no placeholders", "https://x.test/static", "https://x.test/static", ""},

		{"missing top", "{startResult.body.urlz.get}", "", `placeholder {startResult.body.urlz.get}: no field "urlz" in the start response body`},
		{"missing nested", "https://x.test/{startResult.body.urls.put}", "", `placeholder {startResult.body.urls.put}: no field "urls.put" in the start response body`},
		{"index out of range", "https://x.test/{startResult.body.output.5.url}", "", `placeholder {startResult.body.output.5.url}: no field "output.5" in the start response body`},
		{"null value", "https://x.test/{startResult.body.nothing}", "", `placeholder {startResult.body.nothing}: nothing in the start response body is null`},
		{"empty value", "https://x.test/{startResult.body.empty}", "", `placeholder {startResult.body.empty}: empty in the start response body is empty`},
		{"object value", "https://x.test/{startResult.body.urls}", "", `placeholder {startResult.body.urls}: urls in the start response body is an object, not a string or number`},
		{"array value", "https://x.test/{startResult.body.output}", "", `placeholder {startResult.body.output}: output in the start response body is an array, not a string or number`},
		{"missing header", "{startResult.headers.Operation-Location}", "", `placeholder {startResult.headers.Operation-Location}: no header "Operation-Location" in the start response`},
		{"empty header", "https://x.test/{startResult.headers.X-Empty}", "", `placeholder {startResult.headers.X-Empty}: header "X-Empty" in the start response is empty`},
		{"unknown placeholder", "https://x.test/{startResult.id}", "", `unknown placeholder {startResult.id} (use {startResult.body.<path>} or {startResult.headers.<name>})`},
		{"other braces", "https://x.test/{id}", "", `unknown placeholder {id} (use {startResult.body.<path>} or {startResult.headers.<name>})`},
		{"unclosed", "https://x.test/{startResult.body.id", "", `unclosed placeholder "{startResult.body.id"`},
		{"stray close", "https://x.test/}", "", `"}" without a matching "{"`},
		{"empty path", "https://x.test/{startResult.body.}", "", `placeholder {startResult.body.}: invalid path: it is empty`},
		{"empty", "", "", `empty URL template`},
		{"leading value not a URL", "{startResult.body.id}", "", `URL template {startResult.body.id} does not expand to an absolute http(s) URL`},
		{"relative", "/v1/{startResult.body.id}", "", `URL template /v1/{startResult.body.id} does not expand to an absolute http(s) URL`},
		{"other scheme", "ftp://x.test/{startResult.body.id}", "", `URL template ftp://x.test/{startResult.body.id} does not expand to an absolute http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Expand(tt.tmpl, doc, headers)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("Expand = %q, want error %q", got, tt.err)
				}
				if err.Error() != tt.err {
					t.Errorf("error = %q\n     want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			if got != tt.want {
				t.Errorf("Expand = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandLeadingURLValues(t *testing.T) {
	t.Parallel()
	// A leading placeholder is the whole URL; its value must be absolute http(s).
	for _, v := range []string{"javascript:alert(1)", "file:///etc/passwd", "//host/x", "http://", "not a url"} {
		doc := map[string]any{"u": v}
		if got, err := Expand("{startResult.body.u}", doc, nil); err == nil {
			t.Errorf("value %q expanded to %q", v, got)
		}
	}
}

func TestExpandNoBody(t *testing.T) {
	t.Parallel()
	// A start response that was not JSON: every body path is missing.
	_, err := Expand("{startResult.body.urls.get}", nil, nil)
	want := `placeholder {startResult.body.urls.get}: no field "urls" in the start response body`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestPathEscapingCannotAddSegments(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"../admin", "a/../../b", "x?y=1", "x#frag", "%2e%2e"} {
		got, err := Expand("https://api.example.com/v1/tasks/{startResult.body.id}", map[string]any{"id": id}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rest := strings.TrimPrefix(got, "https://api.example.com/v1/tasks/")
		if strings.ContainsAny(rest, "/?#") {
			t.Errorf("id %q gave %q", id, got)
		}
	}
}

func TestLiteralOrigin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		tmpl, want string
		ok         bool
	}{
		{"https://api.x.test/v1/{startResult.body.id}", "https://api.x.test", true},
		{"http://127.0.0.1:8080?id={startResult.body.id}", "http://127.0.0.1:8080", true},
		{"http://[::1]#{startResult.body.id}", "http://[::1]", true},
		{"https://api.x.test", "https://api.x.test", true},
		{"{startResult.body.urls.get}", "", false},
		{"https://{startResult.body.host}/x", "", false},
		{"https://api.x.test{startResult.body.id}", "", false},
		{"{startResult.body.scheme}://x.test/", "", false},
		{"no-scheme/x", "", false},
	} {
		got, ok := LiteralOrigin(c.tmpl)
		if got != c.want || ok != c.ok {
			t.Errorf("LiteralOrigin(%q) = %q, %v; want %q, %v", c.tmpl, got, ok, c.want, c.ok)
		}
	}
}

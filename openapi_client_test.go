package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOpenAPIClientFriendly checks in Go what a client generated from the document needs
// (issue 18, item 19: a client made by openapi-typescript with its defaults did not compile
// a minimal create, and the document declared maxima the server clamps):
//   - no schema has a "default": openapi-typescript (defaultNonNullable) makes every such
//     request field required; defaults are stated in the descriptions instead;
//   - an operation's 200 and 201 share one schema, so its result has one type (create's
//     idempotent replay is a 200);
//   - a query parameter declares no maximum the server does not enforce with a 400;
//   - the minimal create, signal and list requests are valid for the document.
func TestOpenAPIClientFriendly(t *testing.T) {
	t.Parallel()
	sp := oaLoad(t)
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["default"]; ok && (x["type"] != nil || x["$ref"] != nil) {
				t.Errorf("%s declares a default: generated clients make the field required", where)
			}
			for k, c := range x {
				walk(c, where+"/"+k)
			}
		case []any:
			for i, c := range x {
				walk(c, fmt.Sprintf("%s/%d", where, i))
			}
		}
	}
	walk(sp.raw, "#")

	type clamp struct{ path, name string }
	var maxima []clamp
	for _, op := range oaOperations(sp.raw, "paths") {
		responses, _ := op.op["responses"].(map[string]any)
		first := ""
		for code, r := range responses {
			if code != "200" && code != "201" { // 202 (kept for later) is a different answer
				continue
			}
			ref := fmt.Sprint(oaGet(r, "content", "application/json", "schema", "$ref"))
			if first == "" {
				first = ref
			} else if ref != first {
				t.Errorf("%s %s answers 2xx with %s and %s: a generated client sees a union", op.method, op.path, first, ref)
			}
		}
		params, _ := op.op["parameters"].([]any)
		for _, p := range params {
			pm, _ := p.(map[string]any)
			if pm["in"] == "query" && oaGet(pm, "schema", "maximum") != nil {
				maxima = append(maxima, clamp{op.path, pm["name"].(string)})
			}
		}
	}

	c := oaStart(t)
	target := oaNewTarget(t, nil)
	// The minimal requests a generated client sends are valid for the document and accepted.
	r := c.want(c.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "waitForSignal": true}), http.StatusCreated, "minimal create")
	id := r.str("task", "id")
	c.want(c.call("GET", "/v1/tasks?status=pending&status=waiting", nil), http.StatusOK, "list with repeated status")
	c.want(c.call("GET", "/v1/tasks?limit=1000", nil), http.StatusOK, "limit above 100 (clamped, as documented)")
	c.want(c.call("GET", "/v1/tasks/"+id+"?wait=1", nil), http.StatusOK, "long poll")
	tok := r.str("signalToken")
	c.waitStatus(id, "waiting")
	c.want(c.call("POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, "X-API-Key", ""), http.StatusOK, "minimal signal")
	if len(maxima) > 0 {
		t.Errorf("query parameters %v declare a maximum; the server clamps them instead of refusing: say so in the description", maxima)
	}
}

// TestOpenAPITypeScriptClient generates TypeScript types from the served document with
// openapi-typescript (its defaults) and type-checks a minimal create, signal and list
// (testdata/tsclient.ts) with tsc. It needs Node.js: the tools are installed once into
// $ASYNCQUEUE_TS_TOOLS (default: the user cache). Without npx, or when npm cannot install
// them, it skips, unless ASYNCQUEUE_TS_CHECK=required (CI sets it).
func TestOpenAPITypeScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the TypeScript client check runs Node.js tools")
	}
	t.Parallel()
	required := os.Getenv("ASYNCQUEUE_TS_CHECK") == "required"
	skip := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (set ASYNCQUEUE_TS_CHECK=required to make this an error)", args...)
	}
	if _, err := exec.LookPath("npx"); err != nil {
		skip("npx not found: the TypeScript client check needs Node.js")
	}
	tools := os.Getenv("ASYNCQUEUE_TS_TOOLS")
	if tools == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			skip("no cache directory for the Node.js tools: %v", err)
		}
		tools = filepath.Join(cache, "asyncqueue-ts-check")
	}
	bin := filepath.Join(tools, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "tsc")); err != nil {
		os.MkdirAll(tools, 0o755)
		// openapi-typescript 7 does not run on TypeScript 7: keep 5.
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent", "openapi-typescript@7.13.0", "typescript@5")
		cmd.Dir = tools
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("npm install openapi-typescript typescript: %v\n%s", err, out)
		}
	}

	c := oaStart(t)
	res, err := http.Get(c.s.base + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(res.Body)
	res.Body.Close()
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/tsclient.ts")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "openapi.json"), doc, 0o644)
	os.WriteFile(filepath.Join(dir, "check.ts"), src, 0o644)
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("openapi-typescript", "openapi.json", "-o", "schema.d.ts")
	run("tsc", "--noEmit", "--strict", "--target", "es2020", "--moduleResolution", "node", "check.ts")
}

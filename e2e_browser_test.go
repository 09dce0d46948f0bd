package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/asyncqueue/asyncqueue/internal/keys"
)

// The admin page in a real headless Chromium (Debian's chromium package, which .ci/run
// installs), against the real binary. Without a browser the tests skip, except under
// CI=true, where they fail.
//
// ASYNCQUEUE_SCREENSHOTS=docs go test -run Browser ./ also writes the README's screenshots.

// chromiumPath finds the browser, or skips (fails under CI) when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found: the browser tests must run in CI (.ci/run installs Debian's chromium)")
	}
	t.Skip("no chromium found (apt-get install chromium); skipping the browser tests")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a tab's context.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not run under a timeout (see chromedp.Run).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline, failing the test with what the page shows.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		t.Fatalf("browser: %v\npage: %s", err, text)
	}
}

// waitJS waits until the JavaScript expression is true, across page loads.
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(12 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err // a navigation in progress: try again
		time.Sleep(50 * time.Millisecond)
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	t.Fatalf("browser: waiting for %s (last error %v)\npage: %s", expr, lastErr, text)
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// login opens the login page and logs in with key.
func login(t *testing.T, ctx context.Context, base, key string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("main#live h1")),
	)
	if got := evalString(t, ctx, `location.pathname`); got != "/" {
		t.Fatalf("after login at %s, want /", got)
	}
}

// screenshot saves the page (the whole page when full, else the screen) under
// $ASYNCQUEUE_SCREENSHOTS, when set.
func screenshot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	dir := os.Getenv("ASYNCQUEUE_SCREENSHOTS")
	if dir == "" {
		return
	}
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// target is a callback target that answers every call with 200 and a small JSON body.
func target(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"started": true, "jobId": "job_42"}`)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func createTask(t *testing.T, s *server, body map[string]any) (id, token string) {
	t.Helper()
	r := s.call("POST", "/v1/tasks", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create task: %d %s", r.Status, r.Raw)
	}
	token, _ = r.Body["signalToken"].(string)
	return r.task()["id"].(string), token
}

// TestBrowserLiveUpdates: a task created through the API shows up in the open list, then its
// detail page follows its status, both without a reload.
func TestBrowserLiveUpdates(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := startServer(t, "")
	tg := target(t)
	login(t, ctx, s.base, s.key)

	do(t, ctx, chromedp.Navigate(s.base+"/tasks"), chromedp.WaitVisible(chromedp.CSS("#live table")))
	// A reload would drop this marker.
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))
	id, token := createTask(t, s, map[string]any{"targetUrl": tg.URL + "/start", "waitForSignal": true, "maxWaitTime": 600})
	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector('tr[data-id=%q]')`, id))
	if evalString(t, ctx, `String(window.__noReload === true)`) != "true" {
		t.Fatal("the list reloaded the whole page to show the new task")
	}

	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q] a`, id))), chromedp.WaitVisible(chromedp.CSS("#task-status")))
	if got := evalString(t, ctx, `location.pathname`); got != "/tasks/"+id {
		t.Fatalf("opened %s, want /tasks/%s", got, id)
	}
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))
	waitJS(t, ctx, `document.querySelector('#task-status').textContent === 'waiting'`)
	// The target's answer is on the page.
	waitJS(t, ctx, `document.body.innerText.includes('job_42')`)

	r := s.call("POST", "/v1/signals/"+token, map[string]any{"status": "completed", "result": map[string]any{"ok": 1}})
	if r.Status != http.StatusOK {
		t.Fatalf("signal: %d %s", r.Status, r.Raw)
	}
	waitJS(t, ctx, `document.querySelector('#task-status').textContent === 'completed'`)
	if evalString(t, ctx, `String(window.__noReload === true)`) != "true" {
		t.Fatal("the detail page reloaded itself instead of updating in place")
	}
}

// TestBrowserApproveWaiting approves a waiting task with a JSON result from its detail page.
func TestBrowserApproveWaiting(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := startServer(t, "")
	tg := target(t)
	shots := os.Getenv("ASYNCQUEUE_SCREENSHOTS") != ""
	if shots {
		seedForScreenshots(t, s, tg.URL)
	}
	id, _ := createTask(t, s, map[string]any{
		"targetUrl": tg.URL + "/approvals/start", "body": `{"orderId": "order_123", "amount": 1250}`,
		"headers":       map[string]string{"Authorization": "Bearer sk_live_do_not_show", "X-Request-Source": "shop"},
		"waitForSignal": true, "maxWaitTime": 86400, "onCompleteUrl": tg.URL + "/webhook",
	})
	s.waitStatus(id, "waiting", 10*time.Second)
	login(t, ctx, s.base, s.key)
	if shots {
		waitJS(t, ctx, `document.querySelectorAll('rect').length > 0`)
		screenshot(t, ctx, "admin-overview.png", true)
	}

	do(t, ctx, chromedp.Navigate(s.base+"/tasks/"+id), chromedp.WaitVisible(chromedp.CSS("#approve")))
	if got := evalString(t, ctx, `document.querySelector('#task-status').textContent`); got != "waiting" {
		t.Fatalf("status on the page %q, want waiting", got)
	}
	if html := evalString(t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, "sk_live_do_not_show") {
		t.Fatal("the page shows the value of the Authorization header")
	}
	screenshot(t, ctx, "admin-task-waiting.png", true)

	// Text that is not JSON: the error comes back with the text still in the box, at the
	// task's own address (issue 18, item 10).
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#result"), `{"approved": tru`),
		chromedp.Click(chromedp.CSS("#approve")),
	)
	waitJS(t, ctx, `document.querySelector('.flash.err') && document.querySelector('.flash.err').textContent.includes('valid JSON')`)
	if got := evalString(t, ctx, `document.querySelector('#result').value`); got != `{"approved": tru` {
		t.Fatalf("after bad JSON the box holds %q", got)
	}
	waitJS(t, ctx, fmt.Sprintf(`location.pathname === %q`, "/tasks/"+id))
	time.Sleep(1500 * time.Millisecond) // a live refresh would come now: the text must stay
	if got := evalString(t, ctx, `document.querySelector('#result').value`); got != `{"approved": tru` {
		t.Fatalf("a live refresh replaced the typed text with %q", got)
	}
	do(t, ctx,
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#result').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#result"), `{"approved": true, "by": "browser test"}`),
		chromedp.Click(chromedp.CSS("#approve")),
	)
	waitJS(t, ctx, `document.querySelector('#task-status') && document.querySelector('#task-status').textContent === 'completed'`)

	task := s.call("GET", "/v1/tasks/"+id, nil).task()
	if task["status"] != "completed" {
		t.Fatalf("status through the API %v, want completed", task["status"])
	}
	res, _ := json.Marshal(task["result"])
	if string(res) != `{"approved":true,"by":"browser test"}` {
		t.Fatalf("result through the API %s", res)
	}

	// Phone-sized, dark: nothing is wider than the screen.
	do(t, ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
			return err
		}),
	)
	for _, page := range []string{"/", "/tasks", "/tasks/" + id, "/keys"} {
		do(t, ctx, chromedp.Navigate(s.base+page), chromedp.WaitVisible(chromedp.CSS("h1")))
		if w := evalString(t, ctx, `String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("%s on a 390 px wide screen is %s px wide", page, w)
		}
		if page == "/" {
			// The chart is scaled down to the screen; its labels must stay readable (item 13).
			h := evalString(t, ctx, `String(Math.round(document.querySelector('.chart .tick').getBoundingClientRect().height))`)
			if n, _ := strconv.Atoi(h); n < 10 {
				t.Errorf("chart labels on a phone are %s px high, want at least 10", h)
			}
		}
		if page == "/tasks" {
			if bg := evalString(t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(18, 21, 28)" {
				t.Errorf("dark theme not applied: body background %s", bg)
			}
			screenshot(t, ctx, "admin-tasks-phone-dark.png", false)
		}
	}
}

// seedForScreenshots makes the overview worth a picture: finished, failed and waiting tasks.
func seedForScreenshots(t *testing.T, s *server, base string) {
	for i := range 14 {
		createTask(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/reports/%d", base, i)})
	}
	for i := range 3 {
		createTask(t, s, map[string]any{"targetUrl": fmt.Sprintf("http://127.0.0.1:1/unreachable/%d", i), "maxRetries": 0})
	}
	for i := range 4 {
		createTask(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/approvals/%d", base, i), "waitForSignal": true,
			"maxWaitTime": 3600 * (i + 1)})
	}
	createTask(t, s, map[string]any{"targetUrl": base + "/nightly", "delay": 7200})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := s.call("GET", "/v1/tasks?status=pending,processing&limit=1", nil)
		if p, _ := r.Body["pagination"].(map[string]any); p != nil && p["total"] == float64(0) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserCancelDelayed cancels a delayed task from its detail page.
func TestBrowserCancelDelayed(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := startServer(t, "")
	id, _ := createTask(t, s, map[string]any{"targetUrl": "https://example.com/later", "delay": 3600})
	login(t, ctx, s.base, s.key)
	do(t, ctx, chromedp.Navigate(s.base+"/tasks/"+id), chromedp.WaitVisible(chromedp.CSS("#cancel")))
	if got := evalString(t, ctx, `document.querySelector('#task-status').textContent`); got != "delayed" {
		t.Fatalf("status on the page %q, want delayed", got)
	}
	// The first click only asks (issue 18, item 9).
	do(t, ctx, chromedp.Click(chromedp.CSS("#cancel")), chromedp.WaitVisible(chromedp.CSS("#cancel-confirm")))
	time.Sleep(300 * time.Millisecond)
	if st := s.call("GET", "/v1/tasks/"+id, nil).task()["status"]; st != "delayed" {
		t.Fatalf("one click on Cancel made the task %v", st)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#cancel-confirm")))
	waitJS(t, ctx, `document.querySelector('#task-status') && document.querySelector('#task-status').textContent === 'cancelled'`)
	if st := s.call("GET", "/v1/tasks/"+id, nil).task()["status"]; st != "cancelled" {
		t.Fatalf("status through the API %v, want cancelled", st)
	}
	// Retry is offered now.
	waitJS(t, ctx, `!!document.querySelector('#retry')`)
}

// TestBrowserKeys creates a key (shown once), checks that it works, revokes it, and checks
// that the API then refuses it.
func TestBrowserKeys(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := startServer(t, "")
	login(t, ctx, s.base, s.key)
	do(t, ctx,
		chromedp.Navigate(s.base+"/keys"),
		chromedp.WaitVisible(chromedp.CSS("#create-key")),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "browser test"),
		chromedp.Click(chromedp.CSS("#create-key")),
		chromedp.WaitVisible(chromedp.CSS("#new-key")),
	)
	newKey := evalString(t, ctx, `document.querySelector('#new-key').textContent.trim()`)
	if !keys.ValidAPIKey(newKey) {
		t.Fatalf("new key %q is not an API key", newKey)
	}
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", newKey); r.Status != http.StatusOK {
		t.Fatalf("new key: %d %s", r.Status, r.Raw)
	}
	keyID := evalString(t, ctx, fmt.Sprintf(`(function () {
		for (const tr of document.querySelectorAll('tr[data-key]')) {
			if (tr.querySelector('code').textContent === %q) return tr.getAttribute('data-key');
		}
		return '';
	})()`, keys.DisplayPrefix(newKey)))
	if keyID == "" {
		t.Fatal("the new key is not in the list")
	}
	// Revoke asks first (issue 18, item 9).
	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-key=%q] summary`, keyID))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-key=%q] button`, keyID))))
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", newKey); r.Status != http.StatusOK {
		t.Fatalf("one click on Revoke revoked the key: %d", r.Status)
	}
	screenshot(t, ctx, "admin-keys-confirm.png", false)
	do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-key=%q] button`, keyID))))
	waitJS(t, ctx, `document.body.innerText.includes('API key revoked.')`)
	// Reloading after the POST repeats nothing (post/redirect/get, item 8).
	if got := evalString(t, ctx, `location.pathname + location.search`); got != "/keys?done=revoked" {
		t.Fatalf("after revoking at %s", got)
	}
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", newKey); r.Status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d %s, want 401", r.Status, r.Raw)
	}
	// The key this session logged in with still works, and the page says the new one is revoked.
	if r := s.call("GET", "/v1/tasks", nil); r.Status != http.StatusOK {
		t.Fatalf("login key: %d %s", r.Status, r.Raw)
	}
	waitJS(t, ctx, fmt.Sprintf(`document.querySelector('tr[data-key=%q]').innerText.includes('revoked')`, keyID))
}

// TestBrowserTaskListLayout: with a long target URL on the page, ids and times stay on one
// line at desktop width; a phone screen shows several tasks at once, with the filters
// above them (issue 18, item 16).
func TestBrowserTaskListLayout(t *testing.T) {
	ctx := browser(t, 1440, 900)
	s := startServer(t, "")
	long := "https://example.com/" + strings.Repeat("very-long-path-segment/", 8) + "?query=" + strings.Repeat("x", 60)
	for i := range 12 {
		u := fmt.Sprintf("https://example.com/jobs/%d", i)
		if i%4 == 0 {
			u = long
		}
		createTask(t, s, map[string]any{"targetUrl": u, "delay": 3600, "priority": i%10 + 1})
	}
	login(t, ctx, s.base, s.key)
	do(t, ctx, chromedp.Navigate(s.base+"/tasks"), chromedp.WaitVisible(chromedp.CSS("#live table")))
	// One line of the id is about 20 px high; two would be about 40.
	h := evalString(t, ctx, `String(Math.max(...[...document.querySelectorAll('td.id code')].map(c => c.getBoundingClientRect().height)))`)
	if n, _ := strconv.ParseFloat(h, 64); n > 24 {
		t.Errorf("a task id wraps: %s px high", h)
	}
	screenshot(t, ctx, "admin-tasks.png", false)

	do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(s.base+"/tasks"), chromedp.WaitVisible(chromedp.CSS("#live table")))
	visible := evalString(t, ctx, `String([...document.querySelectorAll('tr[data-id]')].filter(r => r.getBoundingClientRect().bottom <= innerHeight).length)`)
	if n, _ := strconv.Atoi(visible); n < 5 {
		t.Errorf("a phone screen shows %s whole tasks, want at least 5", visible)
	}
	if w := evalString(t, ctx, `String(document.documentElement.scrollWidth)`); w != "390" {
		t.Errorf("the list on a 390 px wide screen is %s px wide", w)
	}
	screenshot(t, ctx, "admin-tasks-phone.png", false)
}

// axeScript is axe-core's axe.min.js, from $AXE_CORE_JS (.ci/run installs axe-core with npm
// and sets it). Without it the test skips, except under CI=true, where it fails.
func axeScript(t *testing.T) string {
	t.Helper()
	p := os.Getenv("AXE_CORE_JS")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AXE_CORE_JS is not set: CI must provide axe-core (.ci/run installs it)")
		}
		t.Skip("AXE_CORE_JS is not set (npm install axe-core, then AXE_CORE_JS=…/node_modules/axe-core/axe.min.js); skipping the accessibility check")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return string(b)
}

// TestBrowserAxe runs axe-core (WCAG 2 A and AA rules plus best practices) on every admin
// page, light and dark, desktop and phone: no violation is allowed (issue 18, item 15).
func TestBrowserAxe(t *testing.T) {
	axe := axeScript(t)
	ctx := browser(t, 1280, 900)
	s := startServer(t, "")
	tg := target(t)
	seedForScreenshots(t, s, tg.URL)
	id, _ := createTask(t, s, map[string]any{"targetUrl": tg.URL + "/approve", "waitForSignal": true, "maxWaitTime": 3600,
		"heartbeatTimeout": 600, "onCompleteUrl": tg.URL + "/hook"})
	s.waitStatus(id, "waiting", 10*time.Second)
	if r := s.call("POST", "/v1/tokens", map[string]any{"name": "prod", "value": "Bearer x"}); r.Status >= 300 {
		t.Fatalf("store a vault token: %d %s", r.Status, r.Raw)
	}
	login(t, ctx, s.base, s.key)
	pages := []string{"/", "/tasks", "/tasks?status=failed", "/tasks/" + id, "/keys", "/vault", "/nowhere"}
	for _, theme := range []string{"light", "dark"} {
		for _, phone := range []bool{false, true} {
			setup := []chromedp.Action[chromedp.Void]{chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: theme}}})
				return err
			})}
			if phone {
				setup = append(setup, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
			} else {
				setup = append(setup, chromedp.EmulateViewport(1280, 900))
			}
			do(t, ctx, setup...)
			for _, page := range pages {
				do(t, ctx, chromedp.Navigate(s.base+page), chromedp.WaitVisible(chromedp.CSS("h1")))
				// Open the confirmation boxes, so that they are checked too.
				do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details').forEach(d => d.open = true)`))
				tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				out, err := chromedp.Run(tctx, chromedp.Evaluate[string](axe+`;
					axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
					.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
						nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + ": " + n.failureSummary)}))))`, chromedp.EvalAwaitPromise))
				cancel()
				if err != nil {
					t.Fatalf("axe on %s: %v", page, err)
				}
				if out != "[]" {
					t.Errorf("axe-core, %s, %s, phone %v: %s", page, theme, phone, out)
				}
			}
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// adminEnv is an in-process server (API and admin page) on a temp database, with a team
// and its key.
type adminEnv struct {
	t      *testing.T
	a      *App
	srv    *httptest.Server
	teamID string
	key    string
	cookie string // the session cookie's value once logged in
	csrf   string
}

func setupAdmin(t *testing.T, trusted ...netip.Prefix) *adminEnv {
	t.Helper()
	a := &App{
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		cfg:     &ServeCmd{MaxBody: 1 << 20},
		trusted: trusted,
		sched:   newScheduler(DefaultMaxInFlight, DefaultFlowParallelism, nil),
		hub:     newHub(),
		out:     outbound.New(outbound.Options{Policy: &outbound.Policy{}}),
	}
	a.metrics = newMetrics(a)
	a.vaultKey = bytes.Repeat([]byte{7}, vault.KeySize)
	var err error
	if a.vault, err = vault.New(a.vaultKey); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(filepath.Join(t.TempDir(), "aq.db"), "normal", a.hub.notify)
	if err != nil {
		t.Fatal(err)
	}
	a.store = st
	e := &adminEnv{t: t, a: a}
	e.teamID, e.key = e.newTeam("default")
	e.srv = httptest.NewServer(a.routes())
	t.Cleanup(func() {
		a.hub.closeAll()
		e.srv.Close()
		st.Close()
	})
	return e
}

// newTeam creates a team with one key.
func (e *adminEnv) newTeam(name string) (teamID, key string) {
	e.t.Helper()
	err := e.a.store.Write(context.Background(), func(tx store.Tx) error {
		team, err := createTeam(tx, name)
		if err != nil {
			return err
		}
		teamID = team.ID
		key, _, err = createKey(tx, team.ID, "test key")
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return teamID, key
}

// insertTask writes a task of teamID directly, after mut changes the defaults.
func (e *adminEnv) insertTask(teamID string, mut func(*store.Task)) *store.Task {
	e.t.Helper()
	id, _ := uuid.NewV7()
	now := store.NowMS()
	t := &store.Task{ID: id.String(), TeamID: teamID, Status: store.StatusDelayed, TargetURL: "https://example.com/hook",
		Method: "POST", Headers: "{}", TimeoutMS: 30000, MaxRetries: 3, RetryBackoff: "exponential", Priority: 5,
		MaxWaitMS: 30000, CreatedAt: now}
	due := now + 3600_000
	t.DueAt, t.DelayUntil = &due, &due
	if mut != nil {
		mut(t)
	}
	if err := e.a.store.Write(context.Background(), func(tx store.Tx) error { return tx.InsertTask(t) }); err != nil {
		e.t.Fatal(err)
	}
	return t
}

// waitingTask inserts a task that waits for a signal, with the target's answer recorded.
func (e *adminEnv) waitingTask(teamID string) *store.Task {
	return e.insertTask(teamID, func(t *store.Task) {
		now := store.NowMS()
		exp := now + 3600_000
		_, h := keys.NewToken()
		sr := `{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"started\":true}","duration":12}`
		t.Status, t.WaitForSignal, t.SignalHash, t.MaxWaitMS = store.StatusWaiting, true, h[:], 3600_000
		t.StartedAt, t.WaitingSince, t.ExpiresAt, t.DueAt, t.DelayUntil = &now, &now, &exp, &exp, nil
		t.StartResult, t.Attempts = &sr, 1
	})
}

func (e *adminEnv) task(id string) *store.Task {
	e.t.Helper()
	t, err := e.a.store.Task(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the server without following redirects. A form is sent as a POST
// body (with the session's CSRF token unless it has one); hdr are header name/value pairs.
func (e *adminEnv) do(method, path string, form url.Values, hdr ...string) answer {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		form = cloneValues(form)
		if _, ok := form["csrf"]; !ok && e.csrf != "" {
			form.Set("csrf", e.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if e.cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: e.cookie})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login logs in with key (e.key when empty) and remembers the session and its CSRF token.
func (e *adminEnv) login(key string) {
	e.t.Helper()
	if key == "" {
		key = e.key
	}
	r := e.do("POST", "/login", url.Values{"key": {key}, "next": {"/"}})
	if r.status != http.StatusSeeOther {
		e.t.Fatalf("login: %d %s", r.status, r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			e.cookie = c.Value
		}
	}
	page := e.do("GET", "/", nil)
	m := csrfRE.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		e.t.Fatalf("after login: %d, no CSRF token in %s", page.status, page.body)
	}
	e.csrf = m[1]
}

// samplePath fills the wildcards of an admin route pattern.
func samplePath(pattern, taskID string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{$}", "", "{id}", taskID, "{action}", "cancel", "{file}", "admin.css")
	return method, r.Replace(path)
}

// TestAdminRoutesRequireLogin walks the admin route table: every route that is not public
// answers a request without a (live) session with a redirect to the login page or 401.
func TestAdminRoutesRequireLogin(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	task := e.waitingTask(e.teamID)
	var revoked string
	e.a.store.Write(context.Background(), func(tx store.Tx) error {
		var k *store.APIKey
		var err error
		revoked, k, err = createKey(tx, e.teamID, "revoked")
		if err != nil {
			return err
		}
		_, err = tx.RevokeAPIKey(e.teamID, k.ID, store.NowMS())
		return err
	})
	routes := (&admin{}).routes()
	if len(routes) < 10 {
		t.Fatalf("only %d admin routes", len(routes))
	}
	sessions := map[string]string{
		"no cookie":    "",
		"forged":       strings.Repeat("ab", 32),
		"malformed":    "x",
		"revoked key":  "",
		"after logout": "",
	}
	// A session opened with a key that is revoked afterwards, and one that logged out.
	e2 := &adminEnv{t: t, a: e.a, srv: e.srv}
	if r := e2.do("POST", "/login", url.Values{"key": {revoked}}); r.status != http.StatusUnauthorized {
		t.Fatalf("login with a revoked key: %d", r.status)
	}
	k2 := e.newKey("soon revoked")
	e2 = &adminEnv{t: t, a: e.a, srv: e.srv}
	e2.login(k2.raw)
	sessions["revoked key"] = e2.cookie
	e.a.store.Write(context.Background(), func(tx store.Tx) error {
		_, err := tx.RevokeAPIKey(e.teamID, k2.id, store.NowMS())
		return err
	})
	e3 := &adminEnv{t: t, a: e.a, srv: e.srv, key: e.key}
	e3.login("")
	sessions["after logout"] = e3.cookie
	if r := e3.do("POST", "/logout", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}

	for name, cookie := range sessions {
		for _, rt := range routes {
			if rt.public != nil {
				continue
			}
			method, path := samplePath(rt.pattern, task.ID)
			c := &adminEnv{t: t, a: e.a, srv: e.srv, cookie: cookie}
			var form url.Values
			if method == "POST" {
				form = url.Values{"csrf": {csrfToken(cookie)}, "result": {"{}"}}
			}
			r := c.do(method, path, form, "Sec-Fetch-Site", "same-origin")
			switch {
			case method == "GET" && path != "/events":
				if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login?next=") {
					t.Errorf("%s: %s %s: %d %s, want a redirect to the login page", name, method, path, r.status, r.header.Get("Location"))
				}
			default:
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s: %s %s: %d, want 401", name, method, path, r.status)
				}
			}
			if strings.Contains(r.body, task.ID) && method == "GET" && path != "/tasks/"+task.ID {
				t.Errorf("%s: %s %s shows a task id without a login", name, method, path)
			}
		}
	}
	if st := e.task(task.ID).Status; st != store.StatusWaiting {
		t.Errorf("an unauthenticated request changed the task to %s", st)
	}
}

type rawKey struct{ raw, id string }

func (e *adminEnv) newKey(name string) rawKey {
	e.t.Helper()
	var k rawKey
	err := e.a.store.Write(context.Background(), func(tx store.Tx) error {
		raw, key, err := createKey(tx, e.teamID, name)
		if err == nil {
			k = rawKey{raw, key.ID}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// TestAdminCrossSiteRefused: every state-changing admin request from another site is
// refused (403) and changes nothing; the same request from the page itself works.
func TestAdminCrossSiteRefused(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	task := e.waitingTask(e.teamID)
	other := e.newKey("other")
	team, _ := e.a.store.Team(context.Background(), e.teamID)
	secret := team.WebhookSecret

	posts := []struct {
		path string
		form url.Values
	}{
		{"/tasks/" + task.ID + "/cancel", url.Values{}},
		{"/tasks/" + task.ID + "/retry", url.Values{}},
		{"/tasks/" + task.ID + "/approve", url.Values{"result": {`{"ok":true}`}}},
		{"/tasks/" + task.ID + "/reject", url.Values{"reason": {"no"}}},
		{"/keys", url.Values{"name": {"evil"}}},
		{"/keys/" + other.id + "/revoke", url.Values{}},
		{"/webhook-secret/rotate", url.Values{}},
		{"/logout", url.Values{}},
		{"/login", url.Values{"key": {e.key}}},
	}
	attacks := [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
	}
	for _, p := range posts {
		for _, h := range attacks {
			r := e.do("POST", p.path, p.form, h...)
			if r.status != http.StatusForbidden {
				t.Errorf("POST %s with %s: %s: %d, want 403", p.path, h[0], h[1], r.status)
			}
		}
		// A same-origin request without the session's CSRF token (an old browser that sends
		// neither Sec-Fetch-Site nor Origin) is refused too.
		if p.path != "/login" {
			f := url.Values{"csrf": {"0123"}}
			for k, v := range p.form {
				f[k] = v
			}
			if r := e.do("POST", p.path, f); r.status != http.StatusForbidden {
				t.Errorf("POST %s without a CSRF token: %d, want 403", p.path, r.status)
			}
		}
	}
	if st := e.task(task.ID).Status; st != store.StatusWaiting {
		t.Fatalf("cross-site requests changed the task to %s", st)
	}
	if team, _ := e.a.store.Team(context.Background(), e.teamID); team.WebhookSecret != secret {
		t.Fatal("a cross-site request rotated the webhook secret")
	}
	ks, _ := e.a.store.APIKeys(context.Background(), e.teamID)
	for _, k := range ks {
		if k.Name == "evil" || k.RevokedAt != nil {
			t.Fatalf("a cross-site request changed the keys: %+v", k)
		}
	}
	// The page itself (same-origin, with the token) may.
	r := e.do("POST", "/tasks/"+task.ID+"/approve", url.Values{"result": {`{"ok":true}`}}, "Sec-Fetch-Site", "same-origin",
		"Origin", e.srv.URL)
	if r.status != http.StatusSeeOther || e.task(task.ID).Status != store.StatusCompleted {
		t.Fatalf("same-origin approve: %d %s", r.status, r.body)
	}
}

// TestAdminSecurityHeaders checks the headers of every kind of admin answer and the flags
// of the session cookie.
func TestAdminSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	anon := &adminEnv{t: t, a: e.a, srv: e.srv}
	r := anon.do("POST", "/login", url.Values{"key": {e.key}})
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure || cookie.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", cookie)
	}
	if len(cookie.Value) != 64 {
		t.Fatalf("session id %q: want 256 random bits in hex", cookie.Value)
	}
	e.login("")
	task := e.waitingTask(e.teamID)

	for _, p := range []struct {
		method, path string
		html         bool
	}{
		{"GET", "/login", true}, {"GET", "/", true}, {"GET", "/tasks", true}, {"GET", "/tasks?status=waiting&q=x", true},
		{"GET", "/tasks/" + task.ID, true}, {"GET", "/keys", true}, {"GET", "/no-such-page", true},
		{"GET", "/tasks/" + uuid.NewString(), true}, {"GET", "/static/admin.css", false}, {"GET", "/static/admin.js", false},
		{"POST", "/tasks/" + task.ID + "/cancel", true},
	} {
		var form url.Values
		if p.method == "POST" {
			form = url.Values{}
		}
		r := e.do(p.method, p.path, form)
		h := r.header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
			"base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s %s: CSP %q lacks %q", p.method, p.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s %s: CSP %q allows unsafe-*", p.method, p.path, csp)
		}
		for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY"} {
			if got := h.Get(name); got != want {
				t.Errorf("%s %s: %s %q, want %q", p.method, p.path, name, got, want)
			}
		}
		if p.html {
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s %s: Cache-Control %q, want no-store", p.method, p.path, got)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") && r.status != http.StatusSeeOther {
				t.Errorf("%s %s: Content-Type %q", p.method, p.path, ct)
			}
			// No inline script or style anywhere: the CSP would block it.
			for _, bad := range []string{"<script>", "style=", " onclick=", " onload=", "<style"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("%s %s: page contains %q", p.method, p.path, bad)
				}
			}
		}
	}

	// Secure: only over TLS or behind a trusted proxy that says so.
	for _, c := range []struct {
		trusted []netip.Prefix
		proto   string
		secure  bool
	}{
		{nil, "https", false},
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "https", true},
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "http", false},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "https", false},
	} {
		e := setupAdmin(t, c.trusted...)
		r := e.do("POST", "/login", url.Values{"key": {e.key}}, "X-Forwarded-Proto", c.proto)
		secure := strings.Contains(strings.ToLower(r.header.Get("Set-Cookie")), "; secure")
		if secure != c.secure {
			t.Errorf("trusted %v, X-Forwarded-Proto %s: Secure %v, want %v (%s)", c.trusted, c.proto, secure, c.secure, r.header.Get("Set-Cookie"))
		}
	}
	tls := setupAdmin(t)
	tls.srv.Close()
	tls.srv = httptest.NewTLSServer(tls.a.routes())
	client := tls.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.PostForm(tls.srv.URL+"/login", url.Values{"key": {tls.key}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.Contains(res.Header.Get("Set-Cookie"), "; Secure") {
		t.Errorf("over TLS the cookie is not Secure: %s", res.Header.Get("Set-Cookie"))
	}
}

// TestAdminEscapesTaskData: markup in a task's target, body, headers, error and results
// shows as text on every page, and no task data becomes a link.
func TestAdminEscapesTaskData(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	payloads := []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `javascript:alert(1)`}
	all := strings.Join(payloads, " ")
	mk := func(status string) *store.Task {
		return e.insertTask(e.teamID, func(t *store.Task) {
			now := store.NowMS()
			exp := now + 60_000
			body := all
			errMsg := "Server error: " + all
			hb, _ := json.Marshal(map[string]string{"X-Evil": all, all[:10]: "v"})
			res, _ := json.Marshal(map[string]any{"statusCode": 200, "headers": map[string]string{"x-evil": all},
				"body": all, "duration": 1})
			rs, sig := string(res), fmt.Sprintf(`{"status":"completed","result":{"html":%q}}`, all)
			hook := fmt.Sprintf(`{"status":"failed","attempts":1,"lastError":%q}`, all)
			onc := "https://example.com/?q=" + url.QueryEscape(all)
			t.Status, t.Body, t.Error, t.Headers = status, &body, &errMsg, string(hb)
			t.TargetURL = "https://example.com/" + all
			t.WaitForSignal, t.ExpiresAt, t.WaitingSince = true, &exp, &now
			t.StartResult, t.Progress, t.BufferedSignal = &rs, &sig, &sig
			t.OnCompleteURL, t.OnComplete = &onc, &hook
			if status != store.StatusWaiting {
				t.Result, t.Signal, t.CompletedAt = &sig, &sig, &now
			}
		})
	}
	waiting, done := mk(store.StatusWaiting), mk(store.StatusCompleted)
	e.a.store.Write(context.Background(), func(tx store.Tx) error {
		msg := all
		code := 500
		return tx.InsertAttempt(store.Attempt{TaskID: done.ID, Attempt: 1, StartedAt: store.NowMS(), DurationMS: 5,
			StatusCode: &code, Error: &msg})
	})
	for _, path := range []string{"/", "/tasks", "/tasks?q=" + url.QueryEscape(all), "/tasks?q=" + url.QueryEscape("<script>"),
		"/tasks/" + waiting.ID, "/tasks/" + done.ID} {
		r := e.do("GET", path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		low := strings.ToLower(r.body)
		for _, bad := range []string{"<script>alert", "<img src=x", `href="javascript:`, "href=javascript:", `src="javascript:`} {
			if strings.Contains(low, bad) {
				t.Errorf("GET %s: unescaped %q in the page", path, bad)
			}
		}
		// An event handler attribute (attribute values, where escaped payloads live, removed).
		tags := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(low, `""`)
		if m := regexp.MustCompile(`<[a-z][^>]*\bon[a-z]+\s*=`).FindString(tags); m != "" {
			t.Errorf("GET %s: an event handler attribute in the page: %s", path, m)
		}
		if path != "/" && !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s: the payload is not shown as text", path)
		}
		// Links only to the admin's own pages.
		for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(r.body, -1) {
			if !strings.HasPrefix(m[1], "/") && m[1] != "data:," && m[1] != "#content" { // data:, is the empty favicon; #content the skip link
				t.Errorf("GET %s: link to %q", path, m[1])
			}
		}
	}
}

// TestAdminLoginThrottled: wrong keys are refused, and after LoginAttemptsPerMinute attempts
// from one address even the right key is refused with 429 for a while.
func TestAdminLoginThrottled(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	bad := []string{"", "nope", strings.Repeat("x", 55), "async_" + strings.Repeat("A", 49)}
	other := e.newKey("x")
	revoke := func() {
		e.a.store.Write(context.Background(), func(tx store.Tx) error {
			_, err := tx.RevokeAPIKey(e.teamID, other.id, store.NowMS())
			return err
		})
	}
	revoke()
	bad = append(bad, other.raw)
	throttled, checked := 0, 0
	start := time.Now()
	// The budget refills one attempt per minute/LoginAttemptsPerMinute: a slow machine may
	// earn a few more while the loop runs.
	allowed := func() int {
		return LoginAttemptsPerMinute + int(time.Since(start)/(time.Minute/LoginAttemptsPerMinute))
	}
	for i := range 1000 {
		r := e.do("POST", "/login", url.Values{"key": {bad[i%len(bad)]}})
		switch r.status {
		case http.StatusUnauthorized:
			if checked++; checked > allowed() {
				t.Fatalf("attempt %d was the %dth checked, want throttled after %d", i+1, checked, allowed())
			}
			if r.header.Get("Set-Cookie") != "" {
				t.Fatal("a failed login set a cookie")
			}
		case http.StatusTooManyRequests:
			throttled++
			if r.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("attempt %d: %d", i+1, r.status)
		}
	}
	if throttled != 1000-checked || checked < LoginAttemptsPerMinute {
		t.Fatalf("%d of 1000 throttled and %d checked, want the first %d checked and the rest throttled", throttled, checked, LoginAttemptsPerMinute)
	}
	if r := e.do("POST", "/login", url.Values{"key": {e.key}}); r.status != http.StatusTooManyRequests {
		t.Fatalf("the right key during the lockout: %d, want 429", r.status)
	}
}

// TestAdminActions runs approve, reject, cancel and retry from the detail page.
func TestAdminActions(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")

	w := e.waitingTask(e.teamID)
	r := e.do("POST", "/tasks/"+w.ID+"/approve", url.Values{"result": {`not json`}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "valid JSON") {
		t.Fatalf("approve with bad JSON: %d", r.status)
	}
	r = e.do("POST", "/tasks/"+w.ID+"/approve", url.Values{"result": {` {"approved": true, "n": [1, 2]} `}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/tasks/"+w.ID+"?done=approve" {
		t.Fatalf("approve: %d %s", r.status, r.header.Get("Location"))
	}
	got := e.task(w.ID)
	if got.Status != store.StatusCompleted || got.Result == nil || *got.Result != `{"approved":true,"n":[1,2]}` {
		t.Fatalf("after approve: %s %v", got.Status, got.Result)
	}
	if page := e.do("GET", r.header.Get("Location"), nil); !strings.Contains(page.body, "Task approved") {
		t.Fatal("no notice after approving")
	}
	// A second approve is refused with the API's message, shown on the page.
	r = e.do("POST", "/tasks/"+w.ID+"/approve", url.Values{})
	if r.status != http.StatusConflict || !strings.Contains(r.body, "not waiting") {
		t.Fatalf("second approve: %d", r.status)
	}

	w2 := e.waitingTask(e.teamID)
	if r := e.do("POST", "/tasks/"+w2.ID+"/reject", url.Values{"reason": {"Budget not approved"}}); r.status != http.StatusSeeOther {
		t.Fatalf("reject: %d %s", r.status, r.body)
	}
	if got := e.task(w2.ID); got.Status != store.StatusFailed || *got.Error != "Budget not approved" {
		t.Fatalf("after reject: %s %v", got.Status, got.Error)
	}
	w3 := e.waitingTask(e.teamID)
	e.do("POST", "/tasks/"+w3.ID+"/reject", url.Values{"reason": {""}})
	if got := e.task(w3.ID); got.Status != store.StatusFailed || *got.Error != DefaultSignalError {
		t.Fatalf("reject without reason: %s %v", got.Status, got.Error)
	}

	d := e.insertTask(e.teamID, nil)
	if r := e.do("POST", "/tasks/"+d.ID+"/cancel", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if got := e.task(d.ID); got.Status != store.StatusCancelled {
		t.Fatalf("after cancel: %s", got.Status)
	}
	if r := e.do("POST", "/tasks/"+d.ID+"/cancel", url.Values{}); r.status != http.StatusConflict {
		t.Fatalf("cancel a cancelled task: %d", r.status)
	}
	// Retry of a waitForSignal task redirects to the task, which shows its new signal
	// token once.
	r = e.do("POST", "/tasks/"+w2.ID+"/retry", url.Values{})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/tasks/"+w2.ID+"?done=retry" {
		t.Fatalf("retry: %d %s", r.status, r.header.Get("Location"))
	}
	tokenRE := regexp.MustCompile(`id="signal-token">[0-9a-f]{64}<`)
	if page := e.do("GET", r.header.Get("Location"), nil); !tokenRE.MatchString(page.body) {
		t.Fatal("retry: no new token shown")
	}
	if page := e.do("GET", r.header.Get("Location"), nil); tokenRE.MatchString(page.body) {
		t.Fatal("retry: the new token is shown again on reload")
	}
	if got := e.task(w2.ID); got.Status != store.StatusPending {
		t.Fatalf("after retry: %s", got.Status)
	}
	if r := e.do("POST", "/tasks/"+w2.ID+"/explode", url.Values{}); r.status != http.StatusNotFound {
		t.Fatalf("unknown action: %d", r.status)
	}
}

// TestAdminTeamScope: another team's tasks are invisible and untouchable.
func TestAdminTeamScope(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	otherTeam, _ := e.newTeam("other")
	theirs := e.waitingTask(otherTeam)
	mine := e.waitingTask(e.teamID)
	if r := e.do("GET", "/tasks/"+theirs.ID, nil); r.status != http.StatusNotFound || strings.Contains(r.body, theirs.TargetURL+"<") {
		t.Fatalf("another team's task: %d", r.status)
	}
	for _, action := range []string{"cancel", "approve", "reject", "retry"} {
		if r := e.do("POST", "/tasks/"+theirs.ID+"/"+action, url.Values{}); r.status != http.StatusNotFound {
			t.Errorf("%s another team's task: %d", action, r.status)
		}
	}
	if st := e.task(theirs.ID).Status; st != store.StatusWaiting {
		t.Fatalf("another team's task became %s", st)
	}
	for _, path := range []string{"/tasks", "/", "/tasks?q=" + theirs.ID, "/tasks?status=waiting"} {
		r := e.do("GET", path, nil)
		if strings.Contains(r.body, `data-id="`+theirs.ID) || strings.Contains(r.body, "/tasks/"+theirs.ID) {
			t.Errorf("GET %s shows another team's task", path)
		}
		if path != "/tasks?q="+theirs.ID && !strings.Contains(r.body, `data-id="`+mine.ID) {
			t.Errorf("GET %s does not show the team's own task", path)
		}
	}
	if r := e.do("GET", "/", nil); !strings.Contains(r.body, `<span class="n">1</span><span class="st st-waiting">`) {
		t.Error("the overview counts another team's tasks")
	}
}

// TestAdminTaskList pages through 130 tasks by keyset, filters and searches.
func TestAdminTaskList(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	var ids []string // oldest first
	for i := range 130 {
		task := e.insertTask(e.teamID, func(t *store.Task) {
			t.TargetURL = fmt.Sprintf("https://api.example.com/jobs/%d", i)
			if i%10 == 0 {
				t.Status, t.DueAt, t.DelayUntil = store.StatusCancelled, nil, nil
			}
		})
		ids = append(ids, task.ID)
	}
	rowRE := regexp.MustCompile(`<tr data-id="([0-9a-f-]{36})">`)
	rows := func(body string) []string {
		var out []string
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	linkRE := func(rel string) *regexp.Regexp { return regexp.MustCompile(`<a href="([^"]+)" rel="` + rel + `">`) }

	r := e.do("GET", "/tasks", nil)
	got := rows(r.body)
	if len(got) != AdminPageSize || got[0] != ids[129] || got[49] != ids[80] {
		t.Fatalf("first page: %d rows from %v", len(got), got[:1])
	}
	seen := map[string]bool{}
	page := 1
	for {
		for _, id := range got {
			if seen[id] {
				t.Fatalf("task %s on two pages", id)
			}
			seen[id] = true
		}
		m := linkRE("next").FindStringSubmatch(r.body)
		if m == nil {
			break
		}
		r = e.do("GET", strings.ReplaceAll(m[1], "&amp;", "&"), nil)
		got = rows(r.body)
		page++
	}
	if len(seen) != 130 || page != 3 {
		t.Fatalf("paged through %d tasks in %d pages, want 130 in 3", len(seen), page)
	}
	// Back from the last page.
	m := linkRE("prev").FindStringSubmatch(r.body)
	if m == nil {
		t.Fatal("no link to newer tasks on the last page")
	}
	r = e.do("GET", strings.ReplaceAll(m[1], "&amp;", "&"), nil)
	if got := rows(r.body); len(got) != AdminPageSize || got[0] != ids[79] {
		t.Fatalf("newer page: %d rows from %v, want from %s", len(got), got[:1], ids[79])
	}

	if got := rows(e.do("GET", "/tasks?status=cancelled", nil).body); len(got) != 13 || got[0] != ids[120] {
		t.Fatalf("status filter: %d rows", len(got))
	}
	if got := rows(e.do("GET", "/tasks?q=jobs/12", nil).body); len(got) != 11 { // 12, 120..129
		t.Fatalf("URL search: %d rows, want 11", len(got))
	}
	// Tasks 0, 10, … 120 are cancelled; of those only 120 matches.
	if got := rows(e.do("GET", "/tasks?q=JOBS/12&status=cancelled", nil).body); len(got) != 1 || got[0] != ids[120] {
		t.Fatalf("URL search with status: %v", got)
	}
	if got := rows(e.do("GET", "/tasks?q="+strings.ToUpper(ids[7]), nil).body); len(got) != 1 || got[0] != ids[7] {
		t.Fatalf("id search: %v", got)
	}
	if got := rows(e.do("GET", "/tasks?q=50%25_", nil).body); len(got) != 0 {
		t.Fatalf("LIKE wildcards are not escaped: %d rows", len(got))
	}
	if r := e.do("GET", "/tasks?status=bogus", nil); r.status != http.StatusBadRequest {
		t.Fatalf("bad status: %d", r.status)
	}
	if r := e.do("GET", "/tasks?before=nope", nil); r.status != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d", r.status)
	}
}

// TestAdminSearchWindow: a URL search that finds little stops after MaxScan rows and offers
// to go on below them.
func TestAdminSearchWindow(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	var ids []string
	for i := range 30 {
		ids = append(ids, e.insertTask(e.teamID, func(t *store.Task) {
			if i == 3 {
				t.TargetURL = "https://rare.example.com/x"
			}
		}).ID)
	}
	ctx := context.Background()
	p, err := e.a.store.TaskPage(ctx, store.PageFilter{TeamID: e.teamID, Search: "rare", Limit: 5, MaxScan: 10})
	if err != nil || len(p.Rows) != 0 || p.ScannedTo != ids[20] {
		t.Fatalf("first window: %v rows, scanned to %s (want %s), %v", len(p.Rows), p.ScannedTo, ids[20], err)
	}
	p, _ = e.a.store.TaskPage(ctx, store.PageFilter{TeamID: e.teamID, Search: "rare", Limit: 5, MaxScan: 10, Before: p.ScannedTo})
	if len(p.Rows) != 0 || p.ScannedTo != ids[10] {
		t.Fatalf("second window: %d rows, scanned to %s", len(p.Rows), p.ScannedTo)
	}
	p, _ = e.a.store.TaskPage(ctx, store.PageFilter{TeamID: e.teamID, Search: "rare", Limit: 5, MaxScan: 10, Before: p.ScannedTo})
	if len(p.Rows) != 1 || p.Rows[0].ID != ids[3] || p.ScannedTo != "" {
		t.Fatalf("last window: %d rows, scanned to %q", len(p.Rows), p.ScannedTo)
	}
}

// TestAdminKeysAndSecret creates, lists and revokes keys and rotates the webhook secret.
func TestAdminKeysAndSecret(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	nkeys := func() int {
		ks, _ := e.a.store.APIKeys(context.Background(), e.teamID)
		return len(ks)
	}
	keysBefore := nkeys()
	// Post/redirect/get: the POST answers with a redirect, so a reload repeats nothing;
	// the page it leads to shows the key once (issue 18, item 8).
	r := e.do("POST", "/keys", url.Values{"name": {"<b>ci</b>"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys?done=created" {
		t.Fatalf("create key: %d %s, want a redirect to /keys?done=created", r.status, r.header.Get("Location"))
	}
	if strings.Contains(r.body, "async_") {
		t.Fatal("the POST's answer shows the key")
	}
	r = e.do("GET", "/keys?done=created", nil)
	m := regexp.MustCompile(`id="new-key">(async_[0-9A-Za-z]{49})<`).FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil || !strings.Contains(r.body, "&lt;b&gt;ci&lt;/b&gt;") {
		t.Fatalf("after creating a key: %d, key shown: %v", r.status, m != nil)
	}
	newKey := m[1]
	if nkeys() != keysBefore+1 {
		t.Fatalf("%d keys after creating one, want %d", nkeys(), keysBefore+1)
	}
	// Reloading the page shows the key no more and creates none.
	if page := e.do("GET", "/keys?done=created", nil); strings.Contains(page.body, newKey) || !strings.Contains(page.body, "API key created") {
		t.Fatal("the new key is shown again on reload")
	}
	if page := e.do("GET", "/keys", nil); strings.Contains(page.body, newKey) {
		t.Fatal("the new key is shown again")
	}
	if nkeys() != keysBefore+1 {
		t.Fatal("reloading created another key")
	}
	// Another session of the team does not see it.
	other := &adminEnv{t: t, a: e.a, srv: e.srv, key: e.key}
	other.login("")
	e.do("POST", "/keys", url.Values{"name": {"second"}})
	if page := other.do("GET", "/keys?done=created", nil); strings.Contains(page.body, `id="new-key"`) {
		t.Fatal("another session sees the new key")
	}
	if _, err := e.a.keyTeam(context.Background(), keys.Hash(newKey)); err != nil {
		t.Fatalf("new key does not work: %v", err)
	}
	ks, _ := e.a.store.APIKeys(context.Background(), e.teamID)
	var id string
	for _, k := range ks {
		if k.Name == "<b>ci</b>" {
			id = k.ID
		}
	}
	if r := e.do("POST", "/keys/"+id+"/revoke", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if _, err := e.a.keyTeam(context.Background(), keys.Hash(newKey)); err == nil {
		t.Fatal("revoked key still works")
	}
	if r := e.do("POST", "/keys/"+id+"/revoke", url.Values{}); r.status != http.StatusNotFound {
		t.Fatalf("revoke twice: %d", r.status)
	}
	// Another team's key cannot be revoked from here.
	otherTeam, otherKey := e.newTeam("other")
	oks, _ := e.a.store.APIKeys(context.Background(), otherTeam)
	if r := e.do("POST", "/keys/"+oks[0].ID+"/revoke", url.Values{}); r.status != http.StatusNotFound {
		t.Fatalf("revoke another team's key: %d", r.status)
	}
	if _, err := e.a.keyTeam(context.Background(), keys.Hash(otherKey)); err != nil {
		t.Fatal("another team's key was revoked")
	}

	before, _ := e.a.store.Team(context.Background(), e.teamID)
	if !strings.Contains(html.UnescapeString(e.do("GET", "/keys", nil).body), before.WebhookSecret) {
		t.Fatal("the webhook secret is not on the keys page")
	}
	if r := e.do("POST", "/webhook-secret/rotate", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	after, _ := e.a.store.Team(context.Background(), e.teamID)
	if after.WebhookSecret == before.WebhookSecret || after.PrevWebhookSecret == nil || *after.PrevWebhookSecret != before.WebhookSecret {
		t.Fatal("secret not rotated")
	}

	// Revoking the key this session logged in with ends the session.
	ks, _ = e.a.store.APIKeys(context.Background(), e.teamID)
	var mine string
	for _, k := range ks {
		if keys.Hash(e.key) == [32]byte(k.Hash) {
			mine = k.ID
		}
	}
	e.do("POST", "/keys/"+mine+"/revoke", url.Values{})
	if r := e.do("GET", "/keys", nil); r.status != http.StatusSeeOther {
		t.Fatalf("after revoking its own key the session still works: %d", r.status)
	}
}

// TestAdminVault stores a token (its value never shown again), shows task headers that
// refer to it by name, and deletes it.
func TestAdminVault(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	const secret = "Bearer r8_very_secret_value"
	if r := e.do("POST", "/vault", url.Values{"name": {""}, "value": {secret}}); r.status != http.StatusBadRequest {
		t.Fatalf("store without a name: %d", r.status)
	}
	r := e.do("POST", "/vault", url.Values{"name": {"replicate <prod>"}, "value": {secret}})
	if r.status != http.StatusSeeOther || strings.Contains(r.body, secret) {
		t.Fatalf("store: %d", r.status)
	}
	page := e.do("GET", "/vault", nil)
	m := regexp.MustCompile(`data-token="(tok_[0-9A-Za-z]{24})"`).FindStringSubmatch(page.body)
	if m == nil || !strings.Contains(page.body, "replicate &lt;prod&gt;") || strings.Contains(page.body, "r8_very") {
		t.Fatalf("vault page: token listed %v, value shown %v", m != nil, strings.Contains(page.body, "r8_very"))
	}
	tok := m[1]
	task := e.insertTask(e.teamID, func(t *store.Task) {
		t.Headers = `{"Authorization":"` + tok + `","X-Api-Key":"plain-secret","X-Trace":"t1"}`
	})
	detail := e.do("GET", "/tasks/"+task.ID, nil).body
	if !strings.Contains(detail, tok+" (vault token &#34;replicate &lt;prod&gt;&#34;)") {
		t.Error("the detail page does not name the vault token of the Authorization header")
	}
	if strings.Contains(detail, "plain-secret") || strings.Contains(detail, "r8_very") || !strings.Contains(detail, "t1") {
		t.Error("the detail page shows a secret header value, or hides a plain one")
	}
	if r := e.do("POST", "/vault/"+tok+"/delete", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if strings.Contains(e.do("GET", "/vault", nil).body, tok) {
		t.Fatal("deleted token still listed")
	}
	if !strings.Contains(e.do("GET", "/tasks/"+task.ID, nil).body, tok+" (vault token deleted or unknown)") {
		t.Error("the detail page does not say the token is gone")
	}
	if r := e.do("POST", "/vault/"+tok+"/delete", url.Values{}); r.status != http.StatusNotFound {
		t.Fatalf("delete twice: %d", r.status)
	}
}

// TestAdminEvents: the stream says "change" when a watched task changes and when the team
// gets a new task.
func TestAdminEvents(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	task := e.insertTask(e.teamID, nil)
	newest, _ := e.a.store.NewestTaskID(context.Background(), e.teamID)

	open := func(query string) (*bufio.Reader, func()) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/events?"+query, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: e.cookie})
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		return bufio.NewReader(res.Body), func() { res.Body.Close() }
	}
	waitChange := func(rd *bufio.Reader, what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					done <- err
					return
				}
				if line == "event: change\n" {
					done <- nil
					return
				}
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: stream ended: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change event", what)
		}
	}

	rd, stop := open(url.Values{"watch": {task.ID}}.Encode())
	defer stop()
	e.do("POST", "/tasks/"+task.ID+"/cancel", url.Values{})
	waitChange(rd, "watched task cancelled")

	rd2, stop2 := open(url.Values{"new": {"1"}, "top": {newest}}.Encode())
	defer stop2()
	e.insertTask(e.teamID, nil)
	waitChange(rd2, "new task")
}

// uuidV7At makes a UUIDv7 for Unix millisecond ms, as if the task had been created then.
func uuidV7At(ms int64) string {
	var b [16]byte
	rand.Read(b[6:])
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	return uuid.UUID(b).String()
}

// fillMillion writes n tasks of one team, created over the last 30 days (a busier last
// hour), mostly finished, through the store in big transactions. It returns an API key.
func fillMillion(b *testing.B, db string, n int) string {
	st, teamID, key := openBenchTeam(b, db)
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	const month = 30 * 24 * 3600_000
	lastHour := n / 300 // about 3,300 tasks in the last hour, the rest spread over the month
	hosts := []string{"api.example.com/v1/jobs", "hooks.example.org/render", "billing.example.net/charge"}
	for i := 0; i < n; {
		err := st.Write(ctx, func(tx store.Tx) error {
			for j := 0; j < 20_000 && i < n; j, i = j+1, i+1 {
				var created int64
				if i < n-lastHour {
					created = now - month + int64(i)*(month-3600_000)/int64(n-lastHour)
				} else {
					created = now - 3600_000 + int64(i-(n-lastHour))*3600_000/int64(lastHour)
				}
				body := fmt.Sprintf(`{"n":%d}`, i)
				t := &store.Task{ID: uuidV7At(created), TeamID: teamID, Method: "POST", Headers: "{}", Body: &body,
					TargetURL: fmt.Sprintf("https://%s/%d", hosts[i%len(hosts)], i), TimeoutMS: 30000, MaxRetries: 3,
					RetryBackoff: "exponential", Priority: 5, MaxWaitMS: 30000, CreatedAt: created, Attempts: 1}
				done := created + 250
				started := created + 10
				t.StartedAt = &started
				switch r := i % 100; {
				case r < 85:
					res := `{"statusCode":200,"headers":{},"body":"ok","duration":240}`
					t.Status, t.Result, t.CompletedAt = store.StatusCompleted, &res, &done
				case r < 93:
					msg := "Server error: HTTP 503 - Service Unavailable"
					t.Status, t.Error, t.CompletedAt, t.RetryCount, t.Attempts = store.StatusFailed, &msg, &done, 3, 4
				case r < 95:
					t.Status, t.CompletedAt = store.StatusTimeout, &done
				case r < 97:
					t.Status, t.CompletedAt = store.StatusCancelled, &done
				case r < 99:
					exp := now + 3600_000 + int64(i)%(month)
					h := sha256.Sum256([]byte(t.ID))
					t.Status, t.WaitForSignal, t.SignalHash = store.StatusWaiting, true, h[:]
					t.WaitingSince, t.ExpiresAt, t.DueAt, t.MaxWaitMS = &done, &exp, &exp, exp-done
				default:
					due := now + 3600_000 + int64(i)%month
					t.Status, t.DelayUntil, t.DueAt, t.StartedAt, t.Attempts = store.StatusDelayed, &due, &due, nil, 0
				}
				if err := tx.InsertTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return key
}

// openBenchTeam opens the store of a benchmark's database and creates its one team, with an
// API key.
func openBenchTeam(b *testing.B, db string) (st store.Store, teamID, key string) {
	st, err := openStore(db, "normal", nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx store.Tx) error {
		team, err := createTeam(tx, "default")
		if err != nil {
			return err
		}
		teamID = team.ID
		key, _, err = createKey(tx, team.ID, "bench")
		return err
	}); err != nil {
		st.Close()
		b.Fatal(err)
	}
	return st, teamID, key
}

// BenchmarkAdminTaskList1M measures how long admin pages take to render, through the real
// binary over HTTP, with 1,000,000 tasks in the database (median of 7 loads each):
//
//	go test -run '^$' -bench AdminTaskList1M -benchtime 1x -timeout 30m ./
//
// ASYNCQUEUE_BENCH_DB=/path/aq.db keeps the filled database for the next run.
func BenchmarkAdminTaskList1M(b *testing.B) {
	const n = 1_000_000
	db := os.Getenv("ASYNCQUEUE_BENCH_DB")
	if db == "" {
		db = filepath.Join(b.TempDir(), "aq.db")
	}
	keyFile := db + ".bench-key"
	var key string
	if k, err := os.ReadFile(keyFile); err == nil {
		key = strings.TrimSpace(string(k))
	} else {
		start := time.Now()
		key = fillMillion(b, db, n)
		os.WriteFile(keyFile, []byte(key), 0o600)
		b.Logf("filled %d tasks in %v", n, time.Since(start).Round(time.Second))
	}
	s := &server{t: b, db: db}
	s.launch(false)
	b.Cleanup(s.kill)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(s.base+"/login", url.Values{"key": {key}})
	if err != nil || res.StatusCode != http.StatusSeeOther {
		b.Fatalf("login: %v %v", err, res)
	}
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	load := func(path string) (time.Duration, string) {
		req, _ := http.NewRequest("GET", s.base+path, nil)
		req.AddCookie(cookie)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(start)
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		return d, string(body)
	}
	_, first := load("/tasks")
	older := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(first)
	if older == nil {
		b.Fatal("no link to older tasks")
	}
	mid := uuidV7At(time.Now().Add(-15 * 24 * time.Hour).UnixMilli())
	b.ResetTimer()
	for _, p := range []struct{ name, path string }{
		{"list-newest", "/tasks"},
		{"list-next-page", strings.ReplaceAll(older[1], "&amp;", "&")},
		{"list-page-mid-month", "/tasks?before=" + mid},
		{"list-status-failed", "/tasks?status=failed"},
		{"list-status-waiting-mid", "/tasks?status=waiting&before=" + mid},
		{"search-id", "/tasks?q=" + mid},
		{"search-url-hit", "/tasks?q=render"},
		{"search-url-rare", "/tasks?q=" + url.QueryEscape("jobs/999999")},
		{"overview", "/"},
	} {
		var ds []time.Duration
		for range 7 {
			d, _ := load(p.path)
			ds = append(ds, d)
		}
		slices.Sort(ds)
		med := ds[len(ds)/2]
		b.ReportMetric(float64(med.Microseconds())/1000, "ms-"+p.name)
		b.Logf("%-24s median %7.1f ms (min %.1f, max %.1f)  GET %s", p.name, float64(med.Microseconds())/1000,
			float64(ds[0].Microseconds())/1000, float64(ds[len(ds)-1].Microseconds())/1000, p.path)
	}
}

func TestAdminLocalPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/tasks?status=waiting": "/tasks?status=waiting",
		"/tasks/0197":           "/tasks/0197",
		"":                      "/",
		"https://evil.example":  "/",
		"//evil.example":        "/",
		"/\\evil.example":       "/",
		"/\t/evil.example":      "/",
		"/\n/evil.example":      "/",
		"tasks":                 "/",
		"/%2F%2Fevil.example":   "/%2F%2Fevil.example",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// The admin page answers a full disk and an I/O error as the API does (507, 503), not 500.
func TestAdminStorageErrors(t *testing.T) {
	e := setupAdmin(t)
	s := e.a.newAdmin()
	for _, c := range []struct {
		err    error
		status int
		says   string
	}{
		{fmt.Errorf("commit: %w", store.ErrFull), http.StatusInsufficientStorage, "database is full"},
		{fmt.Errorf("insert task: %w", store.ErrUnavailable), http.StatusServiceUnavailable, "could not write to disk"},
		{errors.New("something else"), http.StatusInternalServerError, "Internal error"},
	} {
		w := httptest.NewRecorder()
		s.fail(w, httptest.NewRequest("POST", "/tasks/x/cancel", nil), nil, c.err)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%v: %d, want %d saying %q", c.err, w.Code, c.status, c.says)
		}
	}
}

// sseStream reads an admin event stream line by line in the background.
type sseStream struct {
	status int
	events chan string // "change", "logout"; closed when the stream ends
	close  func()
}

// openEvents opens GET /events?query with the session's cookie.
func (e *adminEnv) openEvents(query string) *sseStream {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/events?"+query, nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: e.cookie})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	st := &sseStream{status: res.StatusCode, events: make(chan string, 16), close: func() { res.Body.Close() }}
	e.t.Cleanup(st.close)
	go func() {
		defer close(st.events)
		rd := bufio.NewReader(res.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			if ev, ok := strings.CutPrefix(line, "event: "); ok {
				st.events <- strings.TrimSpace(ev)
			}
		}
	}()
	return st
}

// next returns the next event within d, "" when none came ("end" when the stream ended).
func (st *sseStream) next(d time.Duration) string {
	select {
	case ev, ok := <-st.events:
		if !ok {
			return "end"
		}
		return ev
	case <-time.After(d):
		return ""
	}
}

// TestAdminEventsTeamScope: a stream watching another team's task id hears nothing when
// that task changes (issue 18, item 3).
func TestAdminEventsTeamScope(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	otherTeam, otherKey := e.newTeam("other")
	theirs := e.insertTask(otherTeam, nil)
	mine := e.insertTask(e.teamID, nil)

	st := e.openEvents(url.Values{"watch": {theirs.ID + "," + mine.ID}}.Encode())
	if st.status != http.StatusOK {
		t.Fatalf("events: %d", st.status)
	}
	b := &adminEnv{t: t, a: e.a, srv: e.srv}
	b.login(otherKey)
	if r := b.do("POST", "/tasks/"+theirs.ID+"/cancel", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("cancel their task: %d", r.status)
	}
	if ev := st.next(1500 * time.Millisecond); ev != "" {
		t.Fatalf("another team's task changed and this stream said %q", ev)
	}
	e.do("POST", "/tasks/"+mine.ID+"/cancel", url.Values{})
	if ev := st.next(3 * time.Second); ev != "change" {
		t.Fatalf("own watched task changed: got %q, want change", ev)
	}
}

// TestAdminConfirmBeforeDestroying: revoke, delete a vault token, rotate the secret,
// cancel and reject each sit behind a confirmation step (a <details> the first click opens,
// so it works without JavaScript); rotating while a previous secret still signs says that
// it would stop (issue 18, item 9).
func TestAdminConfirmBeforeDestroying(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	w := e.waitingTask(e.teamID)
	d := e.insertTask(e.teamID, nil)
	if r := e.do("POST", "/vault", url.Values{"name": {"prod"}, "value": {"v"}}); r.status != http.StatusSeeOther {
		t.Fatalf("store a token: %d", r.status)
	}
	// Every form that destroys something is inside a confirmation box.
	formRE := regexp.MustCompile(`(?s)<form method="post" action="(/keys/[^"]+/revoke|/vault/[^"]+/delete|/webhook-secret/rotate|/tasks/[^"]+/(?:cancel|reject))"([^>]*)>`)
	pages := map[string]int{"/keys": 2, "/vault": 1, "/tasks/" + w.ID: 2, "/tasks/" + d.ID: 1}
	for path, want := range pages {
		body := e.do("GET", path, nil).body
		ms := formRE.FindAllStringSubmatch(body, -1)
		if len(ms) != want {
			t.Errorf("%s: %d destructive forms, want %d", path, len(ms), want)
		}
		for _, m := range ms {
			if !strings.Contains(m[2], `confirm-box`) {
				t.Errorf("%s: the form to %s takes one click (no confirmation step)", path, m[1])
			}
		}
	}
	keys := e.do("GET", "/keys", nil).body
	if strings.Contains(keys, `id="rotate-warning"`) {
		t.Error("a warning about a previous secret before any rotation")
	}
	e.do("POST", "/webhook-secret/rotate", url.Values{})
	keys = e.do("GET", "/keys", nil).body
	if !strings.Contains(keys, `id="rotate-warning"`) || !strings.Contains(keys, "would stop signing at once") {
		t.Error("rotating again does not say the previous secret's grace ends")
	}
}

// TestAdminTaskTimes: what the detail page says about time: a finished task has no live
// expiry; a waiting task's heartbeat deadline is labelled; a processing task shows its
// call in flight and its timeout (issue 18, items 11 and 12).
func TestAdminTaskTimes(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	now := store.NowMS()

	done := e.insertTask(e.teamID, func(t *store.Task) {
		exp, fin := now+3600_000, now-1000
		t.Status, t.WaitForSignal, t.ExpiresAt, t.CompletedAt, t.DueAt, t.DelayUntil = store.StatusCompleted, true, &exp, &fin, nil, nil
	})
	body := e.do("GET", "/tasks/"+done.ID, nil).body
	if !strings.Contains(body, `id="expires">no longer applies: the task is completed<`) || strings.Contains(body, "(in 59 min)") ||
		strings.Contains(body, "(in 1 h)") {
		t.Errorf("a completed task still shows a live expiry:\n%s", between(body, "Signal and heartbeat", "</dl>"))
	}

	hb := e.insertTask(e.teamID, func(t *store.Task) {
		exp, since, hbt := now+23*3600_000, now-3*60_000, int64(3600_000)
		due := since + hbt
		t.Status, t.WaitForSignal, t.MaxWaitMS, t.HeartbeatTimeoutMS = store.StatusWaiting, true, 24*3600_000, &hbt
		t.WaitingSince, t.StartedAt, t.ExpiresAt, t.DueAt, t.DelayUntil, t.Attempts = &since, &since, &exp, &due, nil, 1
	})
	body = e.do("GET", "/tasks/"+hb.ID, nil).body
	if strings.Contains(body, "Next timer") || !strings.Contains(body, "Times out at (heartbeat deadline)") {
		t.Error("the heartbeat deadline is not labelled")
	}
	if !strings.Contains(body, `id="heartbeat-deadline">`+fmtMS(*hb.DueAt)+` (in 56 min)`) &&
		!strings.Contains(body, `id="heartbeat-deadline">`+fmtMS(*hb.DueAt)+` (in 57 min)`) {
		t.Errorf("no heartbeat deadline in the signal panel:\n%s", between(body, "Signal and heartbeat", "</dl>"))
	}

	proc := e.insertTask(e.teamID, func(t *store.Task) {
		started := now - 5_000
		t.Status, t.StartedAt, t.Attempts, t.DueAt, t.DelayUntil, t.TimeoutMS = store.StatusProcessing, &started, 1, nil, nil, 30_000
	})
	body = e.do("GET", "/tasks/"+proc.ID, nil).body
	if strings.Contains(body, "has not been called yet") {
		t.Error("a processing task says the target has not been called")
	}
	if !regexp.MustCompile(`id="in-flight">[^<]*<span[^>]*>#1 · [^<]*</span>\s*<span class="what">in flight for [45] s\s*· times out at ` +
		regexp.QuoteMeta(fmtMS(now+25_000)) + ` \(in 2[45] s\)`).MatchString(body) {
		t.Errorf("no call in flight with its timeout:\n%s", between(body, "<h2>Attempts</h2>", "</section>"))
	}
}

func between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	before, _, _ := strings.Cut(after, to)
	return before
}

// TestAdminApproveKeepsText: Approve with text that is not JSON shows the error with the
// text still in the box (issue 18, item 10).
func TestAdminApproveKeepsText(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	w := e.waitingTask(e.teamID)
	r := e.do("POST", "/tasks/"+w.ID+"/approve", url.Values{"result": {`{"approved": true, <oops>`}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `data-keep aria-invalid="true" aria-describedby="result-error">{&#34;approved&#34;: true, &lt;oops&gt;</textarea>`) {
		t.Fatalf("approve with bad JSON: %d, typed text not kept:\n%s", r.status, between(r.body, `id="approve-form"`, `</form>`))
	}
	if !strings.Contains(r.body, `data-url="/tasks/`+w.ID+`"`) {
		t.Error("the error page does not name the task page's address")
	}
}

// TestAdminChartTimeouts: the chart says that its failed bars count timeouts too, and how
// many (issue 18, item 13).
func TestAdminChartTimeouts(t *testing.T) {
	t.Parallel()
	c := buildChart(map[int64]*store.MinuteStat{100: {Created: 5, Completed: 2, Failed: 3, TimedOut: 1}}, 100)
	if c.Failed != 3 || c.TimedOut != 1 || !strings.Contains(c.Label, "3 failed or timed out (1 timed out)") {
		t.Fatalf("chart: failed %d, timed out %d, label %q", c.Failed, c.TimedOut, c.Label)
	}
	e := setupAdmin(t)
	e.login("")
	fin := store.NowMS()
	for _, st := range []string{store.StatusFailed, store.StatusTimeout, store.StatusTimeout} {
		e.insertTask(e.teamID, func(t *store.Task) { t.Status, t.CompletedAt, t.DueAt, t.DelayUntil = st, &fin, nil, nil })
	}
	if body := e.do("GET", "/", nil).body; !strings.Contains(body, `id="legend-failed">failed or timed out 3 (2 timed out)<`) {
		t.Errorf("legend: %s", between(body, `class="legend"`, `</p>`))
	}
}

// TestAdminLiveFilteredAndRevoked: a filtered list hears at once that a task moved into
// its filter, and an open page hears at once that its key was revoked (issue 18, item 14).
func TestAdminLiveFilteredAndRevoked(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	k := e.newKey("soon revoked")
	viewer := &adminEnv{t: t, a: e.a, srv: e.srv}
	viewer.login(k.raw)
	e.login("")
	task := e.insertTask(e.teamID, nil)
	e.insertTask(e.teamID, func(t *store.Task) { t.Status, t.DueAt, t.DelayUntil = store.StatusCancelled, nil, nil })

	page := viewer.do("GET", "/tasks?status=cancelled", nil).body
	m := regexp.MustCompile(`data-live="/events\?([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the filtered list has no live stream")
	}
	st := viewer.openEvents(html.UnescapeString(m[1]))
	e.do("POST", "/tasks/"+task.ID+"/cancel", url.Values{})
	if ev := st.next(3 * time.Second); ev != "change" {
		t.Fatalf("a task moved into the filter: stream said %q within 3 s, want change", ev)
	}

	detail := viewer.openEvents(url.Values{"watch": {task.ID}}.Encode())
	if r := e.do("POST", "/keys/"+k.id+"/revoke", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.status)
	}
	for _, s := range []*sseStream{st, detail} {
		ev := s.next(2 * time.Second)
		for ev == "change" {
			ev = s.next(2 * time.Second)
		}
		if ev != "logout" {
			t.Fatalf("key revoked: stream said %q within 2 s, want logout", ev)
		}
	}
}

// TestAdminStreamCap: a team has at most AdminStreamsPerTeam live streams; the next gets
// 429 until one closes, and other teams are not affected (issue 18, item 6).
func TestAdminStreamCap(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	var open []*sseStream
	for range AdminStreamsPerTeam {
		st := e.openEvents("every=60")
		if st.status != http.StatusOK {
			t.Fatalf("stream %d: %d", len(open)+1, st.status)
		}
		open = append(open, st)
	}
	if st := e.openEvents("every=60"); st.status != http.StatusTooManyRequests {
		t.Fatalf("stream %d: %d, want 429", AdminStreamsPerTeam+1, st.status)
	}
	_, otherKey := e.newTeam("other")
	other := &adminEnv{t: t, a: e.a, srv: e.srv}
	other.login(otherKey)
	if st := other.openEvents("every=60"); st.status != http.StatusOK {
		t.Fatalf("another team's stream: %d", st.status)
	}
	open[0].close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.openEvents("every=60")
		if st.status == http.StatusOK {
			break
		}
		st.close()
		if time.Now().After(deadline) {
			t.Fatal("a closed stream's place was not given back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// contrast is the WCAG contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	lum := func(h string) float64 {
		var c [3]float64
		for i := range 3 {
			var v int
			fmt.Sscanf(h[1+2*i:3+2*i], "%02x", &v)
			x := float64(v) / 255
			if x <= 0.03928 {
				c[i] = x / 12.92
			} else {
				c[i] = math.Pow((x+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	}
	la, lb := lum(a), lum(b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// TestAdminContrast checks the stylesheet's colours in both themes: every text colour on
// every background it is drawn on is at least 4.5:1, as WCAG AA asks of normal text
// (issue 18, item 15; axe-core found the light completed badge at 4.37:1).
func TestAdminContrast(t *testing.T) {
	t.Parallel()
	css, err := webFS.ReadFile("web/admin.css")
	if err != nil {
		t.Fatal(err)
	}
	varRE := regexp.MustCompile(`--([\w-]+):\s*(#[0-9a-fA-F]{6});`)
	block := func(re string) map[string]string {
		m := regexp.MustCompile(`(?s)` + re).FindSubmatch(css)
		if m == nil {
			t.Fatalf("no block %s in admin.css", re)
		}
		out := map[string]string{}
		for _, v := range varRE.FindAllSubmatch(m[1], -1) {
			out[string(v[1])] = string(v[2])
		}
		return out
	}
	light := block(`^[^@]*?:root \{(.*?)\n\}`)
	dark := maps.Clone(light)
	maps.Copy(dark, block(`prefers-color-scheme: dark\) \{\s*:root \{(.*?)\}`))
	texts := []string{"text", "muted", "accent", "danger", "completed", "failed"} // completed, failed: the live dot
	for name := range light {
		if strings.HasPrefix(name, "st-") {
			texts = append(texts, name) // status badges, on panels and on the page
		}
	}
	for theme, v := range map[string]map[string]string{"light": light, "dark": dark} {
		check := func(fg, bg string) {
			if v[fg] == "" || v[bg] == "" {
				t.Errorf("%s: --%s or --%s missing", theme, fg, bg)
				return
			}
			if c := contrast(v[fg], v[bg]); c < 4.5 {
				t.Errorf("%s theme: --%s %s on --%s %s is %.2f:1, want at least 4.5:1", theme, fg, v[fg], bg, v[bg], c)
			}
		}
		for _, fg := range texts {
			check(fg, "bg")
			check(fg, "panel")
		}
		check("ok-text", "ok-bg")
		check("err-text", "err-bg")
		check("accent-text", "accent")
		check("muted", "code-bg")
	}
}

// TestAdminPageStructure: what axe-core and a keyboard walk-through asked for on every
// page: a skip link to the content, the heading and everything else inside <main>, no
// empty table header, and a live region that announces refreshes (issue 18, item 15).
func TestAdminPageStructure(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	w := e.waitingTask(e.teamID)
	e.do("POST", "/vault", url.Values{"name": {"prod"}, "value": {"v"}})
	for _, path := range []string{"/", "/tasks", "/tasks?status=waiting", "/tasks/" + w.ID, "/keys", "/vault", "/nowhere"} {
		body := e.do("GET", path, nil).body
		if !strings.Contains(body, `<a class="skip" href="#content">`) || !strings.Contains(body, `id="content"`) {
			t.Errorf("%s: no skip link to the content", path)
		}
		_, page, _ := strings.Cut(body, `id="content"`)
		if !strings.Contains(page, "<main") {
			t.Errorf("%s: no <main>", path)
			continue
		}
		before, inMain, _ := strings.Cut(page, "<main")
		if strings.Contains(before, "<h1") || strings.Contains(before, "<form") || !strings.Contains(inMain, "<h1") {
			t.Errorf("%s: a heading or form outside <main>", path)
		}
		if strings.Contains(body, "<th></th>") {
			t.Errorf("%s: an empty table header", path)
		}
		if strings.Contains(body, `id="live"`) && !strings.Contains(body, `id="live-note" class="sr-only" role="status" aria-live="polite"`) {
			t.Errorf("%s: live refreshes are not announced", path)
		}
	}
}

// TestAdminListFilters: search by part of an id or error text, several statuses, a time
// range, the priority and next-time columns, and a bulk cancel/retry of the filtered set
// behind a confirmation (issue 18, item 16).
func TestAdminListFilters(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	e.login("")
	rowRE := regexp.MustCompile(`<tr data-id="([0-9a-f-]{36})">`)
	rows := func(path string) []string {
		t.Helper()
		r := e.do("GET", path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		var out []string
		for _, m := range rowRE.FindAllStringSubmatch(r.body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	old := e.insertTask(e.teamID, func(t *store.Task) {
		t.CreatedAt = store.NowMS() - 3*3600_000
		t.ID = uuidV7At(t.CreatedAt)
		t.Status, t.DueAt, t.DelayUntil = store.StatusFailed, nil, nil
		msg := "Payment was declined by the bank"
		t.Error = &msg
	})
	to := e.insertTask(e.teamID, func(t *store.Task) { t.Status, t.DueAt, t.DelayUntil = store.StatusTimeout, nil, nil })
	d := e.insertTask(e.teamID, func(t *store.Task) { t.Priority = 9 })
	w := e.waitingTask(e.teamID)

	if got := rows("/tasks?q=" + d.ID[19:]); len(got) != 1 || got[0] != d.ID {
		t.Errorf("partial id search: %v", got)
	}
	if got := rows("/tasks?q=payment+was+DECLINED"); len(got) != 1 || got[0] != old.ID {
		t.Errorf("error text search: %v", got)
	}
	for _, q := range []string{"status=failed&status=timeout", "status=failed,timeout"} {
		if got := rows("/tasks?" + q); !slices.Equal(got, []string{to.ID, old.ID}) {
			t.Errorf("%s: %v", q, got)
		}
	}
	from := time.Now().UTC().Add(-time.Hour).Format(dateTimeLocal)
	if got := rows("/tasks?from=" + from); len(got) != 3 || slices.Contains(got, old.ID) {
		t.Errorf("created from %s: %v", from, got)
	}
	if got := rows("/tasks?to=" + from); !slices.Equal(got, []string{old.ID}) {
		t.Errorf("created before %s: %v", from, got)
	}
	body := e.do("GET", "/tasks", nil).body
	if !strings.Contains(body, `<th>Priority</th>`) || !strings.Contains(body, `data-label="Priority" class="num">9<`) ||
		!regexp.MustCompile(`<tr data-id="`+w.ID+`">(?s:.*?)expires in (59 min|1 h)`).MatchString(body) {
		t.Error("no priority or expiry in the list")
	}
	if r := e.do("GET", "/tasks?from=yesterday", nil); r.status != http.StatusBadRequest {
		t.Errorf("bad time: %d", r.status)
	}

	// Bulk: the first POST only asks; the second, confirmed, acts.
	ask := e.do("POST", "/tasks/bulk", url.Values{"action": {"cancel"}, "status": {"delayed,waiting"}})
	if ask.status != http.StatusOK || !strings.Contains(ask.body, "Cancel 2 tasks?") || !strings.Contains(ask.body, `id="bulk-confirm"`) {
		t.Fatalf("bulk cancel, unconfirmed: %d\n%s", ask.status, between(ask.body, "<main", "</main>"))
	}
	if e.task(d.ID).Status != store.StatusDelayed || e.task(w.ID).Status != store.StatusWaiting {
		t.Fatal("an unconfirmed bulk cancel changed tasks")
	}
	r := e.do("POST", "/tasks/bulk", url.Values{"action": {"cancel"}, "status": {"delayed,waiting"}, "confirm": {"yes"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("bulk cancel: %d %s", r.status, r.body)
	}
	if e.task(d.ID).Status != store.StatusCancelled || e.task(w.ID).Status != store.StatusCancelled || e.task(old.ID).Status != store.StatusFailed {
		t.Fatal("bulk cancel did not cancel exactly the filtered tasks")
	}
	if page := e.do("GET", r.header.Get("Location"), nil).body; !strings.Contains(page, "2 tasks cancelled.") {
		t.Error("no notice after the bulk cancel")
	}
	r = e.do("POST", "/tasks/bulk", url.Values{"action": {"retry"}, "status": {"failed"}, "q": {"declined"}, "confirm": {"yes"}})
	if r.status != http.StatusSeeOther || e.task(old.ID).Status != store.StatusPending || e.task(to.ID).Status != store.StatusTimeout {
		t.Fatalf("bulk retry: %d, %s, %s", r.status, e.task(old.ID).Status, e.task(to.ID).Status)
	}
	if r := e.do("POST", "/tasks/bulk", url.Values{"action": {"cancel"}, "confirm": {"yes"}}); r.status != http.StatusBadRequest {
		t.Errorf("bulk cancel without a filter: %d", r.status)
	}
	// The list offers it when filtered.
	if body := e.do("GET", "/tasks?status=failed", nil).body; !strings.Contains(body, `id="bulk-retry"`) || strings.Contains(body, `id="bulk-cancel"`) {
		t.Error("the failed list does not offer a bulk retry (only)")
	}
}

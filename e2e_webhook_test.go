package main

// End-to-end tests of onCompleteUrl webhooks and request signing (SPEC §5).

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2EWebhookEvents: each terminal state posts {"event","task"} to onCompleteUrl, signed in
// both schemes, and the delivery is recorded on the task.
func TestE2EWebhookEvents(t *testing.T) {
	t.Parallel()
	ok := newE2ETarget(t, nil)
	bad := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusBadGateway)
	})
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	secret := e2eSecret(t, s)

	// completed: a plain task.
	idDone, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": ok.URL, "onCompleteUrl": hook.URL + "/done"})
	// failed: a target answering 502 with no retries.
	idFail, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": bad.URL, "maxRetries": 0, "onCompleteUrl": hook.URL + "/fail"})
	// failed by signal, timeout, cancelled: wait/signal tasks.
	idSigFail, tokSigFail, _ := e2eCreate(t, s, map[string]any{"targetUrl": ok.URL, "waitForSignal": true, "maxWaitTime": 3600, "onCompleteUrl": hook.URL + "/sigfail"})
	idTimeout, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": ok.URL, "waitForSignal": true, "maxWaitTime": 1, "onCompleteUrl": hook.URL + "/timeout"})
	idCancel, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": ok.URL, "delay": 3600, "onCompleteUrl": hook.URL + "/cancel"})

	e2eWaitStatus(t, s, idSigFail, "waiting", 10*time.Second)
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tokSigFail, map[string]any{"status": "failed", "error": "Payment was declined"}, sigNoKey...); r.Status != 200 {
		t.Fatalf("fail signal = %d %s", r.Status, r.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/tasks/"+idCancel+"/cancel", nil); r.Status != 200 {
		t.Fatalf("cancel delayed = %d %s", r.Status, r.Raw)
	}
	want := map[string]struct{ path, event, status string }{
		idDone:    {"/done", "task.completed", "completed"},
		idFail:    {"/fail", "task.failed", "failed"},
		idSigFail: {"/sigfail", "task.failed", "failed"},
		idTimeout: {"/timeout", "task.timeout", "timeout"},
		idCancel:  {"/cancel", "task.cancelled", "cancelled"},
	}
	hook.waitHits(t, len(want), 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	seen := map[string]int{}
	for _, ev := range e2eEvents(t, hook.Hits()) {
		h := ev.Hit
		id, _ := ev.Task["id"].(string)
		w, known := want[id]
		if !known {
			t.Errorf("webhook for unknown task %q: %s", id, h.Body)
			continue
		}
		seen[id]++
		if h.Method != "POST" || h.Path != w.path {
			t.Errorf("%s: webhook %s %s, want POST %s", w.event, h.Method, h.Path, w.path)
		}
		if ev.Event != w.event || ev.Task["status"] != w.status {
			t.Errorf("%s: got event %q with task status %v", w.event, ev.Event, ev.Task["status"])
		}
		if ct := h.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", w.event, ct)
		}
		if got := h.Header.Get("X-AsyncQueue-Task-Id"); got != id {
			t.Errorf("%s: X-AsyncQueue-Task-Id %q, want %q", w.event, got, id)
		}
		if err := e2eVerify(h.Header, h.Body, secret); err != nil {
			t.Errorf("%s: signature: %v", w.event, err)
		}
		// "the same task object as the API"
		for _, f := range []string{"id", "teamId", "status", "targetUrl", "method", "createdAt", "completedAt", "onCompleteUrl", "waitForSignal", "maxWaitTime", "retryCount"} {
			if _, ok := ev.Task[f]; !ok {
				t.Errorf("%s: webhook task lacks %q", w.event, f)
			}
		}
		if _, ok := ev.Task["signalToken"]; ok {
			t.Errorf("%s: webhook task shows signalToken", w.event)
		}
	}
	for id, w := range want {
		if seen[id] != 1 {
			t.Errorf("%s: %d deliveries, want 1", w.event, seen[id])
		}
		// The outcome is kept on the task.
		deadline := time.Now().Add(10 * time.Second)
		var oc map[string]any
		for time.Now().Before(deadline) {
			oc = e2eObj(e2eGet(t, s, id)["onComplete"])
			if oc["status"] == "delivered" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if oc["status"] != "delivered" || oc["attempts"] != 1.0 {
			t.Errorf("%s: onComplete = %v, want delivered after 1 attempt", w.event, oc)
		}
	}
	if got := e2eGet(t, s, idFail); got["error"] != "Server error: HTTP 502 - Bad Gateway" {
		t.Errorf("failed task error = %v", got["error"])
	}
}

// TestE2ECallbackSignatures: callback requests are signed like webhooks; webhook-id is stable
// across retries and the retry count goes up.
func TestE2ECallbackSignatures(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if hit.N == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	s := startServer(t, "")
	secret := e2eSecret(t, s)
	body := `{"amount": 42, "currency": "EUR"}`
	id, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL + "/charge?x=1", "method": "PUT", "body": body,
		"maxRetries": 1, "headers": map[string]string{"X-Custom": "abc"}})
	got := e2eWaitStatus(t, s, id, "completed", 15*time.Second)
	hs := target.Hits()
	if len(hs) != 2 {
		t.Fatalf("target got %d calls, want 2 (one retry)", len(hs))
	}
	for i, h := range hs {
		if h.Method != "PUT" || string(h.Body) != body || h.Header.Get("X-Custom") != "abc" {
			t.Errorf("call %d: %s %q X-Custom=%q", i, h.Method, h.Body, h.Header.Get("X-Custom"))
		}
		if err := e2eVerify(h.Header, h.Body, secret); err != nil {
			t.Errorf("call %d signature: %v", i, err)
		}
		// A signature over another body must not verify (the check is real).
		if err := e2eVerify(h.Header, append([]byte(nil), append(h.Body, ' ')...), secret); err == nil {
			t.Errorf("call %d: signature verified over a tampered body", i)
		}
		if got := h.Header.Get("X-AsyncQueue-Retry-Count"); got != []string{"0", "1"}[i] {
			t.Errorf("call %d: X-AsyncQueue-Retry-Count %q", i, got)
		}
		if h.Header.Get("X-AsyncQueue-Task-Id") != id {
			t.Errorf("call %d: X-AsyncQueue-Task-Id %q", i, h.Header.Get("X-AsyncQueue-Task-Id"))
		}
	}
	if a, b := hs[0].Header.Get("webhook-id"), hs[1].Header.Get("webhook-id"); a == "" || a != b {
		t.Errorf("webhook-id across retries: %q, %q; want the same", a, b)
	}
	if got["retryCount"] != 1.0 {
		t.Errorf("retryCount = %v, want 1", got["retryCount"])
	}
	// With a wrong secret nothing verifies.
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := e2eVerify(hs[1].Header, hs[1].Body, other); err == nil {
		t.Errorf("signature verified with a foreign secret")
	}
}

// TestE2EWebhookRetryDelivered: a webhook answering 500 twice then 200 ends delivered after 3 attempts.
func TestE2EWebhookRetryDelivered(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if hit.N <= 2 {
			http.Error(w, "down", 500)
			return
		}
		w.WriteHeader(200)
	})
	s := startServer(t, "")
	secret := e2eSecret(t, s)
	id, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "onCompleteUrl": hook.URL})
	deadline := time.Now().Add(25 * time.Second)
	var task map[string]any
	for time.Now().Before(deadline) {
		task = e2eGet(t, s, id)
		if oc := e2eObj(task["onComplete"]); oc["status"] == "delivered" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	oc := e2eObj(task["onComplete"])
	if oc["status"] != "delivered" || oc["attempts"] != 3.0 {
		t.Fatalf("onComplete = %v, want delivered after 3 attempts", oc)
	}
	if task["status"] != "completed" {
		t.Errorf("task status = %v, want completed", task["status"])
	}
	hs := hook.Hits()
	if len(hs) != 3 {
		t.Fatalf("webhook target got %d requests, want 3", len(hs))
	}
	for i, h := range hs {
		if err := e2eVerify(h.Header, h.Body, secret); err != nil {
			t.Errorf("delivery %d: %v", i, err)
		}
		if h.Header.Get("webhook-id") != hs[0].Header.Get("webhook-id") {
			t.Errorf("delivery %d: webhook-id %q differs from the first %q", i, h.Header.Get("webhook-id"), hs[0].Header.Get("webhook-id"))
		}
		// The payload describes the same event each time (its onComplete progress may differ).
		ev, ev0 := e2eEvents(t, []e2eHit{h})[0], e2eEvents(t, []e2eHit{hs[0]})[0]
		if ev.Event != ev0.Event || ev.Task["id"] != id || ev.Task["completedAt"] != ev0.Task["completedAt"] {
			t.Errorf("delivery %d: %s, differs from the first %s", i, h.Body, hs[0].Body)
		}
	}
	// Backoff sanity (coarse): the retries are not immediate.
	if d := hs[2].At.Sub(hs[0].At); d < 2*time.Second {
		t.Errorf("3 attempts within %v; want the 1 s + 2 s backoff", d)
	}
	time.Sleep(1 * time.Second)
	if n := len(hook.Hits()); n != 3 {
		t.Errorf("deliveries after success: %d, want 3", n)
	}
}

// TestE2EWebhookRetryFailed: a webhook that always answers 500 ends failed after 4 attempts;
// the task's own status is unchanged.
func TestE2EWebhookRetryFailed(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", 500)
	})
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600, "onCompleteUrl": hook.URL})
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": "fine"}, sigNoKey...); r.Status != 200 {
		t.Fatalf("signal = %d %s", r.Status, r.Raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	var task map[string]any
	for time.Now().Before(deadline) {
		task = e2eGet(t, s, id)
		if oc := e2eObj(task["onComplete"]); oc["status"] == "failed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	oc := e2eObj(task["onComplete"])
	if oc["status"] != "failed" || oc["attempts"] != 4.0 {
		t.Fatalf("onComplete = %v, want failed after 4 attempts", oc)
	}
	if le, _ := oc["lastError"].(string); le == "" || !strings.Contains(le, "500") {
		t.Errorf("onComplete.lastError = %v, want the HTTP 500", oc["lastError"])
	}
	if task["status"] != "completed" || e2eJSON(task["result"]) != `"fine"` || task["error"] != nil {
		t.Errorf("task = status %v result %v error %v, want completed/\"fine\"/none: webhooks never change it", task["status"], task["result"], task["error"])
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(hook.Hits()); n != 4 {
		t.Errorf("webhook target got %d requests, want 4", n)
	}
}

// TestE2EWebhookSecretRotate: after a rotation callbacks and webhooks carry two signatures, one
// verifiable with the new secret and one with the old.
func TestE2EWebhookSecretRotate(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	old := e2eSecret(t, s)

	// Before: one signature.
	id0, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "onCompleteUrl": hook.URL})
	e2eWaitStatus(t, s, id0, "completed", 10*time.Second)
	h0 := target.waitHits(t, 1, 5*time.Second)[0]
	if err := e2eVerify(h0.Header, h0.Body, old); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	hook.waitHits(t, 1, 10*time.Second)

	r := e2eCall(t, s, "POST", "/v1/webhook-secret/rotate", nil)
	if r.Status != 200 {
		t.Fatalf("rotate = %d %s", r.Status, r.Raw)
	}
	nw, _ := r.Body["secret"].(string)
	if nw == "" || nw == old {
		t.Fatalf("rotate returned %q (old %q), want a new secret", nw, old)
	}
	if cur := e2eSecret(t, s); cur != nw {
		t.Errorf("GET /v1/webhook-secret after rotate = %q, want the new %q", cur, nw)
	}

	id1, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "onCompleteUrl": hook.URL})
	e2eWaitStatus(t, s, id1, "completed", 10*time.Second)
	hs := target.waitHits(t, 2, 5*time.Second)
	cb := hs[1]
	if cb.Header.Get("X-AsyncQueue-Task-Id") != id1 {
		t.Fatalf("second callback is for %q, want %q", cb.Header.Get("X-AsyncQueue-Task-Id"), id1)
	}
	if err := e2eVerify(cb.Header, cb.Body, nw, old); err != nil {
		t.Errorf("callback after rotation: %v", err)
	}
	if got := strings.Count(cb.Header.Get("X-AsyncQueue-Signature"), "v1="); got != 2 {
		t.Errorf("callback X-AsyncQueue-Signature %q: %d v1= values, want 2", cb.Header.Get("X-AsyncQueue-Signature"), got)
	}
	whs := hook.waitHits(t, 2, 10*time.Second)
	var wh *e2eHit
	for i := range whs {
		if whs[i].Header.Get("X-AsyncQueue-Task-Id") == id1 {
			wh = &whs[i]
		}
	}
	if wh == nil {
		t.Fatalf("no webhook for the task after rotation")
	}
	if err := e2eVerify(wh.Header, wh.Body, nw, old); err != nil {
		t.Errorf("webhook after rotation: %v", err)
	}
	if got := len(strings.Fields(wh.Header.Get("webhook-signature"))); got != 2 {
		t.Errorf("webhook-signature %q: %d signatures, want 2", wh.Header.Get("webhook-signature"), got)
	}
}

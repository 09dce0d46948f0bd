package main

// Inbound abuse and secrets hygiene against the real binary (issue 6, items 4 and 5;
// reliability-security.md §7 C2, E5, E6, F1–F4). IPv6 /64 grouping and the memory bound of
// the per-IP limiter under a flood of distinct addresses are unit-tested in internal/iplimit
// (TestIPv6RotationInOnePrefix, TestFloodKeepsMemoryBounded, TestSpoofedXFFDoesNotResetLimit).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// abuseExchange writes head and then body (if any) on a fresh connection to addr while
// reading the first response, and reports whether the server closed the connection
// afterwards (EOF or reset within closeWait, rather than keeping it open).
func abuseExchange(t *testing.T, addr, head string, body func(io.Writer)) (res *http.Response, resBody []byte, closed bool, took time.Duration) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		if body != nil {
			body(conn) // write errors are expected once the server has answered and closed
		}
	}()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resBody, _ = io.ReadAll(res.Body)
	res.Body.Close()
	took = time.Since(start)
	// After the answer the server must close: drain what it still sends (a second
	// response to the garbage after a lying Content-Length) until EOF.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, br)
	var ne net.Error
	closed = !(errors.As(err, &ne) && ne.Timeout())
	return res, resBody, closed, took
}

// abuseJSONFiller writes a JSON object start and then filler up to n bytes in total.
func abuseJSONFiller(w io.Writer, n int) {
	prefix := `{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600, "body": "`
	io.WriteString(w, prefix)
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for left := n - len(prefix); left > 0; {
		c := chunk[:min(left, len(chunk))]
		if _, err := w.Write(c); err != nil {
			return
		}
		left -= len(c)
	}
}

func abuseHealthy(t *testing.T, s *server) {
	t.Helper()
	if r := s.call("GET", "/healthz", nil); r.Status != 200 {
		t.Fatalf("server unhealthy: %d %s", r.Status, r.Raw)
	}
	if r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600}); r.Status != 201 {
		t.Fatalf("server no longer creates tasks: %d %s", r.Status, r.Raw)
	}
}

// TestE2EAbuseBodyLimit (F1): bodies over --max-body (1 MiB) get 413 and the connection is
// closed, whether the size is announced (Content-Length), unknown (chunked) or lied about.
func TestE2EAbuseBodyLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	const limit = 1 << 20
	head := func(extra string) string {
		return "POST /v1/tasks HTTP/1.1\r\nHost: " + s.addr + "\r\nX-API-Key: " + s.key +
			"\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	chunked := func(total int) func(io.Writer) {
		return func(w io.Writer) {
			pr, pw := io.Pipe()
			go func() { abuseJSONFiller(pw, total); pw.Close() }()
			buf := make([]byte, 64<<10)
			for {
				n, err := pr.Read(buf)
				if n > 0 {
					if _, werr := fmt.Fprintf(w, "%x\r\n%s\r\n", n, buf[:n]); werr != nil {
						pr.CloseWithError(werr)
						return
					}
				}
				if err != nil {
					break
				}
			}
			io.WriteString(w, "0\r\n\r\n")
		}
	}
	cases := []struct {
		name   string
		head   string
		body   func(io.Writer)
		status int
	}{
		{"Content-Length limit+1", head(fmt.Sprintf("Content-Length: %d\r\n", limit+1)),
			func(w io.Writer) { abuseJSONFiller(w, limit+1) }, 413},
		{"Content-Length 8 MiB", head(fmt.Sprintf("Content-Length: %d\r\n", 8<<20)),
			func(w io.Writer) { abuseJSONFiller(w, 8<<20) }, 413},
		{"chunked 2 MiB, no Content-Length", head("Transfer-Encoding: chunked\r\n"), chunked(2 << 20), 413},
		// Announces 10 MiB, sends 1.5 MiB and stalls: refused once the limit is read, not at the timeout.
		{"Content-Length lies high", head(fmt.Sprintf("Content-Length: %d\r\n", 10<<20)),
			func(w io.Writer) { abuseJSONFiller(w, 3<<19) }, 413},
		// Announces 40 bytes, sends 2 MiB: the 40 bytes are an incomplete JSON document (400),
		// the rest is garbage where the next request should be.
		{"Content-Length lies low", head("Content-Length: 40\r\n"),
			func(w io.Writer) { abuseJSONFiller(w, 2<<20) }, 400},
	}
	for _, c := range cases {
		res, body, closed, took := abuseExchange(t, s.addr, c.head, c.body)
		t.Logf("%s: %d in %v, closed %v: %s", c.name, res.StatusCode, took.Round(time.Millisecond), closed, bytes.TrimSpace(body))
		if res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, res.StatusCode, c.status)
		}
		if c.status == 413 && !strings.Contains(string(body), "larger than 1048576 bytes") {
			t.Errorf("%s: body %s, want the limit named", c.name, body)
		}
		if !closed {
			t.Errorf("%s: connection left open after the refusal", c.name)
		}
		if took > 10*time.Second {
			t.Errorf("%s: answered after %v", c.name, took)
		}
	}
	// Exactly the limit is accepted.
	var b bytes.Buffer
	abuseJSONFiller(&b, limit-2)
	b.WriteString(`"}`)
	if r := s.call("POST", "/v1/tasks", b.String()); r.Status != 201 {
		t.Errorf("a body of exactly %d bytes: %d %.200s", b.Len(), r.Status, r.Raw)
	}
	abuseHealthy(t, s)
}

// TestE2EAbuseHostileJSON (F3): deeply nested JSON and numbers beyond float64 in every
// numeric field get 400 (never 5xx), quickly, and the server stays healthy.
func TestE2EAbuseHostileJSON(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	deep := strings.Repeat("[", 100_000)
	deepObj := strings.Repeat(`{"a":`, 50_000)
	tok := abuseHex(32)
	noKey := []string{"X-API-Key", ""}
	type req struct {
		method, path, body string
		want               int
		hdr                []string
	}
	reqs := []req{
		{"POST", "/v1/tasks", deep, 400, nil},
		{"POST", "/v1/tasks", deepObj, 400, nil},
		{"POST", "/v1/tasks", `{"targetUrl": "http://127.0.0.1:9/x", "body": ` + deep, 400, nil},
		{"POST", "/v1/tasks", `{"targetUrl": "http://127.0.0.1:9/x", "headers": ` + deepObj, 400, nil},
		{"POST", "/v1/tasks", `{"targetUrl": "http://127.0.0.1:9/x", "pollConfig": ` + deepObj, 400, nil},
		{"POST", "/v1/signals/" + tok, `{"status": "completed", "result": ` + deep, 400, noKey},
		{"POST", "/v1/signals/" + tok + "/heartbeat", `{"progress": ` + deepObj, 400, noKey},
		{"POST", "/v1/callbacks/" + tok, deep, 400, noKey},
		{"POST", "/v1/tokens", `{"name": "n", "value": ` + deep, 400, nil},
	}
	huge := []string{"1e400", "-1e400", "1e309", strings.Repeat("9", 100), "-" + strings.Repeat("9", 100),
		"1" + strings.Repeat("0", 99) + ".5", "123456789012345678901234567890e300"}
	for _, field := range []string{"timeout", "delay", "maxRetries", "priority", "maxWaitTime", "heartbeatTimeout"} {
		for _, n := range huge {
			reqs = append(reqs, req{"POST", "/v1/tasks", fmt.Sprintf(
				`{"targetUrl": "http://127.0.0.1:9/x", "waitForSignal": true, %q: %s}`, field, n), 400, nil})
		}
	}
	for _, field := range []string{"interval", "maxDuration"} {
		for _, n := range huge[:3] {
			reqs = append(reqs, req{"POST", "/v1/tasks", fmt.Sprintf(`{"targetUrl": "http://127.0.0.1:9/x", "pollConfig":
				{"urlTemplate": "http://127.0.0.1:9/{startResult.body.id}", "interval": 5, "statusPath": "s", "doneValues": ["d"], %q: %s}}`,
				field, n), 400, nil})
		}
	}
	for _, q := range []string{"limit=" + strings.Repeat("9", 100), "limit=1e400", "offset=" + strings.Repeat("9", 100), "offset=-1e400"} {
		reqs = append(reqs, req{"GET", "/v1/tasks?" + q, "", 400, nil})
	}
	reqs = append(reqs,
		req{"GET", "/v1/tasks/00000000-0000-7000-8000-000000000000?wait=" + strings.Repeat("9", 100), "", 400, nil},
		// Valid JSON numbers where any JSON is allowed: not a parse error, so the unknown token decides.
		req{"POST", "/v1/signals/" + tok, `{"status": "completed", "result": {"n": 1e400, "m": ` + strings.Repeat("9", 100) + `}}`, 404, noKey},
		req{"POST", "/v1/signals/" + tok + "/heartbeat", `{"progress": 1e400}`, 404, noKey},
	)
	var worst time.Duration
	for _, r := range reqs {
		start := time.Now()
		got := s.call(r.method, r.path, r.body, r.hdr...)
		took := time.Since(start)
		worst = max(worst, took)
		label := r.method + " " + r.path + " " + r.body[:min(len(r.body), 90)]
		if got.Status != r.want {
			t.Errorf("%s: %d %.200s, want %d", label, got.Status, got.Raw, r.want)
		}
		if got.Status >= 400 && got.Body["error"] == nil {
			t.Errorf("%s: error body %.200q", label, got.Raw)
		}
		if took > 5*time.Second {
			t.Errorf("%s: took %v", label, took)
		}
	}
	// The refusals name the field.
	r := s.call("POST", "/v1/tasks", `{"targetUrl": "http://127.0.0.1:9/x", "priority": 1e400}`)
	if !strings.Contains(r.Raw, "priority") {
		t.Errorf("huge priority: %s, want the field named", r.Raw)
	}
	t.Logf("%d hostile bodies and queries refused, slowest %v", len(reqs), worst.Round(time.Millisecond))
	if strings.Contains(s.Logs(), `"level":"ERROR"`) {
		t.Errorf("hostile input logged errors:\n%s", abuseGrepLines(s.Logs(), `"level":"ERROR"`))
	}
	abuseHealthy(t, s)
}

func abuseGrepLines(logs, needle string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EAbuseSlowloris (F2): connections that send their headers byte by byte are closed by
// ReadHeaderTimeout (5 s, serve.go) while everyone else is served; headers over
// MaxHeaderBytes (64 KiB) get 431.
func TestE2EAbuseSlowloris(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	const slow = 20
	var wg sync.WaitGroup
	closedAfter := make([]time.Duration, slow)
	stopNormal := make(chan struct{})
	var normalOK, normalFail atomic.Int64
	var normalWorst atomic.Int64
	go func() {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stopNormal:
				return
			case <-time.After(200 * time.Millisecond):
			}
			start := time.Now()
			res, err := hc.Get(s.base + "/healthz")
			if err != nil {
				normalFail.Add(1)
				continue
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				normalFail.Add(1)
				continue
			}
			normalOK.Add(1)
			if d := int64(time.Since(start)); d > normalWorst.Load() {
				normalWorst.Store(d)
			}
		}
	}()
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			start := time.Now()
			go func() {
				msg := "POST /v1/tasks HTTP/1.1\r\nHost: " + s.addr + "\r\nX-Slow: " + strings.Repeat("a", 200)
				for j := 0; j < len(msg) && time.Since(start) < 15*time.Second; j++ {
					if _, err := conn.Write([]byte{msg[j]}); err != nil {
						return
					}
					time.Sleep(250 * time.Millisecond)
				}
			}()
			conn.SetReadDeadline(start.Add(15 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				closedAfter[i] = -1 // still open at 15 s
				return
			}
			closedAfter[i] = time.Since(start)
		}()
	}
	wg.Wait()
	close(stopNormal)
	var lo, hi time.Duration = time.Hour, 0
	for i, d := range closedAfter {
		if d < 0 {
			t.Errorf("slow connection %d still open after 15 s", i)
			continue
		}
		lo, hi = min(lo, d), max(hi, d)
		if d < 4500*time.Millisecond || d > 8*time.Second {
			t.Errorf("slow connection %d closed after %v, want about 5 s (ReadHeaderTimeout)", i, d)
		}
	}
	worst := time.Duration(normalWorst.Load())
	t.Logf("slowloris: %d slow connections closed after %v–%v; meanwhile %d normal requests ok, %d failed, slowest %v",
		slow, lo.Round(time.Millisecond), hi.Round(time.Millisecond), normalOK.Load(), normalFail.Load(), worst.Round(time.Millisecond))
	if normalFail.Load() != 0 || normalOK.Load() < 10 || worst > 2*time.Second {
		t.Errorf("normal traffic during the attack: %d ok, %d failed, slowest %v", normalOK.Load(), normalFail.Load(), worst)
	}

	// A header block over MaxHeaderBytes.
	res, _, _, _ := abuseExchange(t, s.addr, "GET /healthz HTTP/1.1\r\nHost: "+s.addr+"\r\nX-Big: "+
		strings.Repeat("b", 100<<10)+"\r\n\r\n", nil)
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d, want 431", res.StatusCode)
	}
	abuseHealthy(t, s)
}

// TestE2EAbusePageClamp (F4): the page size is clamped to 100; invalid values are 400.
func TestE2EAbusePageClamp(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	for i := range 105 {
		if r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600}); r.Status != 201 {
			t.Fatalf("create %d: %d %s", i, r.Status, r.Raw)
		}
	}
	for _, q := range []string{"limit=1000000", "limit=101", "limit=2147483648"} {
		r := s.call("GET", "/v1/tasks?"+q, nil)
		p, _ := r.Body["pagination"].(map[string]any)
		tasks, _ := r.Body["tasks"].([]any)
		if r.Status != 200 || p["limit"] != float64(100) || len(tasks) != 100 || p["hasMore"] != true {
			t.Errorf("%s: %d, pagination %v, %d tasks; want limit 100, 100 tasks, hasMore", q, r.Status, p, len(tasks))
		}
	}
	for _, q := range []string{"limit=-1", "limit=0", "limit=abc", "limit=1e3", "limit=", "offset=-1", "offset=x"} {
		r := s.call("GET", "/v1/tasks?"+q, nil)
		if q == "limit=" {
			if r.Status != 200 {
				t.Errorf("%s: %d, want the default page", q, r.Status)
			}
			continue
		}
		if r.Status != 400 {
			t.Errorf("%s: %d %s, want 400", q, r.Status, r.Raw)
		}
	}
}

// abuseHex returns n random bytes as hex.
func abuseHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestE2EAbuseRateLimitSpoof (E6): the per-IP limits of the signal and callback endpoints
// (--signal-rate-limit 5) are not reset by a spoofed X-Forwarded-For; behind a trusted proxy
// the forwarded client address (right-most untrusted hop, IPv6 by /64) is the key.
func TestE2EAbuseRateLimitSpoof(t *testing.T) {
	t.Parallel()
	const limit = 5
	count := func(s *server, n int, req func(i int) (method, path string, hdr []string)) (allowed int, last resp) {
		for i := range n {
			m, p, h := req(i)
			last = s.call(m, p, `{"status": "completed"}`, append([]string{"X-API-Key", ""}, h...)...)
			if last.Status == 429 {
				if ra := last.Header.Get("Retry-After"); ra == "" || ra == "0" {
					t.Errorf("429 without a Retry-After: %v", last.Header)
				}
				continue
			}
			allowed++
		}
		return allowed, last
	}
	spoof := func(i int) []string {
		return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1), "X-Real-IP", fmt.Sprintf("203.0.113.%d", i+1),
			"Forwarded", fmt.Sprintf("for=192.0.2.%d", i+1)}
	}

	s := startServer(t, "", "--signal-rate-limit", fmt.Sprint(limit))
	paths := []func(i int) (string, string, []string){
		func(i int) (string, string, []string) { return "GET", "/v1/signals/" + abuseHex(32), spoof(i) },
		func(i int) (string, string, []string) { return "POST", "/v1/signals/" + abuseHex(32), spoof(i) },
		func(i int) (string, string, []string) {
			return "POST", "/v1/signals/" + abuseHex(32) + "/heartbeat", spoof(i)
		},
		func(i int) (string, string, []string) { return "POST", "/v1/signals/not-a-token", spoof(i) },
	}
	allowed := 0
	for _, p := range paths {
		n, _ := count(s, 4, p)
		allowed += n
	}
	// 16 signal requests, each from a "different" forwarded address: one budget.
	if allowed < limit || allowed > limit+1 {
		t.Errorf("signals with spoofed X-Forwarded-For: %d of 16 allowed, want %d", allowed, limit)
	}
	cb, _ := count(s, 12, func(i int) (string, string, []string) { return "POST", "/v1/callbacks/" + abuseHex(32), spoof(i) })
	if cb < limit || cb > limit+1 {
		t.Errorf("callbacks with spoofed X-Forwarded-For: %d of 12 allowed, want %d (their own budget)", cb, limit)
	}
	t.Logf("no trusted proxy: spoofed X-Forwarded-For allowed %d/16 signal and %d/12 callback requests (limit %d)", allowed, cb, limit)

	// Behind a trusted proxy on 127.0.0.1.
	p := startServer(t, "", "--signal-rate-limit", fmt.Sprint(limit), "--trusted-proxies", "127.0.0.1/32")
	sig := func(xff string) func(int) (string, string, []string) {
		return func(int) (string, string, []string) {
			return "GET", "/v1/signals/" + abuseHex(32), []string{"X-Forwarded-For", xff}
		}
	}
	if n, last := count(p, limit+2, sig("203.0.113.7")); n > limit+1 || last.Status != 429 {
		t.Errorf("client 203.0.113.7 behind the proxy: %d of %d allowed, last %d", n, limit+2, last.Status)
	}
	if n, _ := count(p, 1, sig("203.0.113.8")); n != 1 {
		t.Errorf("another client behind the proxy was refused")
	}
	if n, _ := count(p, 2, sig("10.9.8.7, 198.51.100.99, 203.0.113.7")); n != 0 {
		t.Errorf("a forged left part of X-Forwarded-For reset the limit of 203.0.113.7: %d allowed", n)
	}
	if n, _ := count(p, limit+1, sig("2001:db8:1:2::1")); n > limit+1 {
		t.Errorf("IPv6 client: %d allowed", n)
	}
	if n, _ := count(p, 2, sig("2001:db8:1:2:ffff:ffff:ffff:fffe")); n != 0 {
		t.Errorf("another address in the same /64 got %d requests through", n)
	}
	if n, _ := count(p, 1, sig("2001:db8:1:3::1")); n != 1 {
		t.Errorf("an address in another /64 was refused")
	}
	if n, _ := count(p, 1, func(int) (string, string, []string) {
		return "POST", "/v1/callbacks/" + abuseHex(32), []string{"X-Forwarded-For", "203.0.113.7"}
	}); n != 1 {
		t.Errorf("callbacks share the signal budget of 203.0.113.7")
	}
}

// TestE2EAbuseMalformedTokens (E5): malformed signal tokens get 400 and malformed callback
// ids 404, quickly.
func TestE2EAbuseMalformedTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	good := abuseHex(32)
	bad := []string{"abc", good[:63], good + "0", strings.Repeat("g", 64), strings.ToUpper(good),
		strings.Repeat("é", 32), good[:62] + "%00", good[:60] + "%20%20", "0x" + good[:62], strings.Repeat("0", 1000)}
	var worst time.Duration
	for _, tok := range bad {
		for _, c := range []struct{ method, path string }{
			{"POST", "/v1/signals/" + tok}, {"GET", "/v1/signals/" + tok}, {"POST", "/v1/signals/" + tok + "/heartbeat"},
		} {
			start := time.Now()
			r := s.call(c.method, c.path, `{"status": "completed"}`, "X-API-Key", "")
			worst = max(worst, time.Since(start))
			if r.Status != 400 || !strings.Contains(r.Raw, "Malformed signal token") {
				t.Errorf("%s %s: %d %s, want 400 Malformed signal token", c.method, c.path, r.Status, r.Raw)
			}
		}
		start := time.Now()
		r := s.call("POST", "/v1/callbacks/"+tok, `{}`, "X-API-Key", "")
		worst = max(worst, time.Since(start))
		if r.Status != 404 {
			t.Errorf("POST /v1/callbacks/%s: %d %s, want 404", tok, r.Status, r.Raw)
		}
	}
	if worst > 2*time.Second {
		t.Errorf("slowest refusal %v", worst)
	}
	t.Logf("%d malformed tokens refused on 4 endpoints, slowest %v", len(bad), worst.Round(time.Microsecond))
}

// TestMalformedTokenNoDatabase (E5, "before any database work"): the token handlers refuse a
// malformed token with no store at all; a well-formed one does reach the store (the probe
// works: the nil store panics or fails with 500).
func TestMalformedTokenNoDatabase(t *testing.T) {
	t.Parallel()
	a := &App{cfg: &ServeCmd{MaxBody: 1 << 20}, log: slog.New(slog.NewTextHandler(io.Discard, nil))} // store is nil
	handlers := []struct {
		name  string
		param string
		h     func(http.ResponseWriter, *http.Request) error
		want  int
	}{
		{"signal", "token", a.signalByToken, 400},
		{"getSignal", "token", a.getSignal, 400},
		{"heartbeat", "heartbeat", a.heartbeat, 400}, // param "token", body {"progress": 50}
		{"callback", "id", a.callback, 404},
		{"signalTaskByID", "id", a.signalTaskByID, 400},
	}
	call := func(h func(http.ResponseWriter, *http.Request) error, param, tok string) (code int, panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		body := `{"status": "completed"}`
		if param == "heartbeat" {
			param, body = "token", `{"progress": 50}`
		}
		r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), teamKey, "team"))
		r.SetPathValue(param, tok)
		w := httptest.NewRecorder()
		a.handle(h).ServeHTTP(w, r)
		return w.Code, false
	}
	good := abuseHex(32)
	for _, h := range handlers {
		for _, tok := range []string{"", "abc", good[:63], good + "a", strings.ToUpper(good), strings.Repeat("z", 64), "../" + good[:61]} {
			code, panicked := call(h.h, h.param, tok)
			if panicked || code != h.want {
				t.Errorf("%s(%q): %d (panicked %v; a panic or 500 means it touched the store), want %d", h.name, tok, code, panicked, h.want)
			}
		}
		if h.name == "signalTaskByID" {
			continue // its id is a UUID; the same check happens in loadTask
		}
		// A nil store panics, or (Store.Write recovers) fails with 500.
		if code, panicked := call(h.h, h.param, good); !panicked && code != 500 {
			t.Errorf("%s with a well-formed token answered %d without reaching the (nil) store: the probe is broken", h.name, code)
		}
	}
}

// TestE2EAbuseSecretsHygiene (C2, E5, issue 6 item 5): API keys made by the CLI, signal tokens,
// callback ids and vault values, each used, appear neither in the database file nor its WAL
// nor the server's debug log nor in later responses and webhooks. The callback id is part of
// the task object by SPEC §6 (callbackId), so it is left out of the response check.
func TestE2EAbuseSecretsHygiene(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var hits []*http.Request
	var bodies []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, r.Clone(context.Background()))
		bodies = append(bodies, string(b))
		mu.Unlock()
		io.WriteString(w, `{"id": "job-1"}`)
	}))
	defer target.Close()
	s := startServer(t, "")
	type secret struct{ kind, raw string }
	var secrets []secret

	// API keys made with the CLI while the server runs, each then used.
	for i := range 3 {
		cmd := exec.Command(binPath, "--db", s.db, "keys", "create", "--name", fmt.Sprintf("hygiene-%d", i))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("keys create: %v\n%s", err, errb.String())
		}
		k := keyRE.FindString(out.String())
		if k == "" {
			t.Fatalf("keys create printed no key: %q", out.String())
		}
		secrets = append(secrets, secret{"api key", k})
		if r := s.call("GET", "/v1/tasks?limit=1", nil, "X-API-Key", k); r.Status != 200 {
			t.Fatalf("new key refused: %d %s", r.Status, r.Raw)
		}
	}
	// (The bootstrap key is printed on stderr once by design, so it is not searched for in the log.)

	// A vault value, used by a task.
	vaultValue := "Bearer sk-live-" + abuseHex(24)
	r := s.call("POST", "/v1/tokens", map[string]any{"name": "provider", "value": vaultValue})
	tokID, _ := r.Body["token"].(map[string]any)["id"].(string)
	if r.Status != 201 || tokID == "" {
		t.Fatalf("create vault token: %d %s", r.Status, r.Raw)
	}
	secrets = append(secrets, secret{"vault value", vaultValue})
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL + "/vault", "headers": map[string]string{"Authorization": tokID},
		"onCompleteUrl": target.URL + "/done"})
	if r.Status != 201 {
		t.Fatalf("create with vault ref: %d %s", r.Status, r.Raw)
	}
	vaultTask := r.task()["id"].(string)

	// Signal tokens: signalled, checked, heartbeat, and some left unused.
	var tokens, waitIDs []string
	for range 8 {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL + "/wait", "waitForSignal": true,
			"maxWaitTime": 600, "onCompleteUrl": target.URL + "/done"})
		tok, _ := r.Body["signalToken"].(string)
		if r.Status != 201 || tok == "" {
			t.Fatalf("create waiting task: %d %s", r.Status, r.Raw)
		}
		tokens = append(tokens, tok)
		waitIDs = append(waitIDs, r.task()["id"].(string))
		secrets = append(secrets, secret{"signal token", tok})
	}
	for _, id := range waitIDs {
		s.waitStatus(id, "waiting", 20*time.Second)
	}
	noKey := []string{"X-API-Key", ""}
	for i, tok := range tokens[:6] {
		switch i % 3 {
		case 0:
			if r := s.call("POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": map[string]any{"i": i}}, noKey...); r.Status != 200 {
				t.Errorf("signal: %d %s", r.Status, r.Raw)
			}
		case 1:
			if r := s.call("POST", "/v1/signals/"+tok+"/heartbeat", map[string]any{"progress": i}, noKey...); r.Status != 200 {
				t.Errorf("heartbeat: %d %s", r.Status, r.Raw)
			}
		case 2:
			if r := s.call("GET", "/v1/signals/"+tok, nil, noKey...); r.Status != 200 {
				t.Errorf("check token: %d %s", r.Status, r.Raw)
			}
		}
	}

	// Provider callback ids: two used, one not.
	var cbIDs []string
	for i := range 3 {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL + "/provider",
			"body": `{"webhook": "{asyncqueue_callback_url}"}`, "maxWaitTime": 600, "onCompleteUrl": target.URL + "/done"})
		cbURL, _ := r.Body["callbackUrl"].(string)
		if r.Status != 201 || cbURL == "" {
			t.Fatalf("create callback task: %d %s", r.Status, r.Raw)
		}
		id := cbURL[strings.LastIndex(cbURL, "/")+1:]
		cbIDs = append(cbIDs, id)
		secrets = append(secrets, secret{"callback id", id})
		s.waitStatus(r.task()["id"].(string), "waiting", 20*time.Second)
		if i < 2 {
			if r := s.call("POST", "/v1/callbacks/"+id, map[string]any{"output": "done"}, noKey...); r.Status != 200 {
				t.Errorf("callback: %d %s", r.Status, r.Raw)
			}
		}
	}
	s.waitStatus(vaultTask, "completed", 20*time.Second)
	// The vault value reached the target (it is resolved at send time), and so did the callback URL.
	mu.Lock()
	sawVault, sawCB := false, 0
	for i, h := range hits {
		if h.URL.Path == "/vault" && h.Header.Get("Authorization") == vaultValue {
			sawVault = true
		}
		for _, id := range cbIDs {
			if strings.Contains(bodies[i], "/v1/callbacks/"+id) {
				sawCB++
			}
		}
	}
	mu.Unlock()
	if !sawVault || sawCB != len(cbIDs) {
		t.Fatalf("target did not get the resolved secrets (vault %v, callback URLs %d/%d)", sawVault, sawCB, len(cbIDs))
	}

	// Later responses: the task views, the list, the attempts and the vault listing.
	var views strings.Builder
	for _, p := range append([]string{"/v1/tasks?limit=100", "/v1/tokens", "/v1/tasks/" + vaultTask, "/v1/tasks/" + vaultTask + "/attempts"},
		func() (ps []string) {
			for _, id := range waitIDs {
				ps = append(ps, "/v1/tasks/"+id)
			}
			return ps
		}()...) {
		r := s.call("GET", p, nil)
		views.WriteString(r.Raw)
	}
	// What the completion webhooks carried.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	var webhooks strings.Builder
	for i, h := range hits {
		if h.URL.Path == "/done" {
			webhooks.WriteString(bodies[i])
		}
	}
	mu.Unlock()

	type place struct {
		name string
		data []byte
	}
	read := func(when string) []place {
		if onPostgres {
			return []place{{when + " PostgreSQL", dbContents(t, s.db)}}
		}
		var ps []place
		for _, f := range []string{s.db, s.db + "-wal"} {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			ps = append(ps, place{when + " " + f[strings.LastIndex(f, "/")+1:], b})
		}
		return ps
	}
	places := read("running:")
	s.kill() // no checkpoint: the WAL stays as it is
	places = append(places, read("killed:")...)
	places = append(places, place{"server log", []byte(s.Logs())})
	var sizes []string
	for _, p := range places {
		sizes = append(sizes, fmt.Sprintf("%s %d B", p.name, len(p.data)))
	}
	found := 0
	for _, sec := range secrets {
		forms := [][]byte{[]byte(sec.raw)}
		if b, err := hex.DecodeString(sec.raw); err == nil {
			forms = append(forms, b) // the 32 bytes a hex token encodes
		}
		if sec.kind == "vault value" {
			forms = append(forms, []byte(strings.TrimPrefix(sec.raw, "Bearer ")))
		}
		for _, p := range places {
			for _, f := range forms {
				if bytes.Contains(p.data, f) {
					found++
					t.Errorf("%s %.12s… found in %s", sec.kind, sec.raw, p.name)
				}
			}
		}
		if sec.kind != "callback id" && strings.Contains(views.String(), sec.raw) {
			found++
			t.Errorf("%s %.12s… found in a later API response", sec.kind, sec.raw)
		}
		if strings.Contains(webhooks.String(), sec.raw) && sec.kind != "callback id" {
			found++
			t.Errorf("%s %.12s… found in a completion webhook", sec.kind, sec.raw)
		}
	}
	t.Logf("secrets hygiene: %d secrets (%d API keys, 1 vault value, %d signal tokens, %d callback ids) searched raw and decoded in %v: %d found",
		len(secrets), 3, len(tokens), len(cbIDs), sizes, found)
	if !strings.Contains(s.Logs(), "/v1/signals/[REDACTED]") {
		t.Errorf("the debug log has no redacted signal path: the grep proves nothing")
	}
}

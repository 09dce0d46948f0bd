package outbound

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// benchHandler answers like a small webhook receiver.
func benchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	})
}

// BenchmarkClientDoPlain is the dispatcher's call in miniature: a small JSON POST with a few
// headers and a per-call timeout, to a loopback server that answers a short body. Besides
// ns/op (mostly loopback latency) it reports cpu-ns/op, the CPU time of this process per
// call. "httptest" serves from this process, so that figure includes the server;
// "server-process" serves from a child process, so it is the client's alone.
func BenchmarkClientDoPlain(b *testing.B) {
	b.Run("httptest", func(b *testing.B) {
		s := httptest.NewServer(benchHandler())
		defer s.Close()
		benchDo(b, s.URL)
	})
	b.Run("server-process", func(b *testing.B) {
		benchDo(b, startServerProcess(b))
	})
}

func benchDo(b *testing.B, target string) {
	c := New(Options{Policy: &Policy{AllowPrivate: true}, UserAgent: "asyncqueue/bench"})
	defer c.CloseIdle()
	body := []byte(`{"hello":"world","n":42}`)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/hook?x=1", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-AsyncQueue-Task-Id", "0197a6f2-7c1e-7b3a-9d2f-4c5e6f7a8b9c")
		req.Header.Set("X-AsyncQueue-Retry-Count", "0")
		resp, err := c.Do(req, 0)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || string(resp.Body) != `{"ok":true}` {
			b.Fatalf("status %d body %q", resp.StatusCode, resp.Body)
		}
	}
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// serverProcessEnv makes the test binary run TestServerProcess as a bare HTTP server.
const serverProcessEnv = "OUTBOUND_BENCH_SERVER"

// startServerProcess runs benchHandler in a child process (this test binary running
// TestServerProcess) and returns its URL; the child is killed when b ends.
func startServerProcess(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerProcess$")
	cmd.Env = append(os.Environ(), serverProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("server process: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		b.Fatalf("server process said %q", line)
	}
	return "http://" + addr
}

// TestServerProcess is the child of startServerProcess; as a test on its own it does nothing.
func TestServerProcess(t *testing.T) {
	if os.Getenv(serverProcessEnv) != "1" {
		t.Skip("runs only as BenchmarkClientDoPlain's server process")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	http.Serve(ln, benchHandler()) // until the benchmark kills the process
}

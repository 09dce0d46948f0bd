// Command sink is the callback target of the peers harness. A call to /cb/{run}/{seq} is
// task seq of run; the sink keeps its first arrival (Unix ns) and how many calls came.
// ?sleep_ms=N answers N ms later; ?hang=1 never answers (until the caller gives up).
//
// Control: GET /stats?run=R, GET /dump?run=R ({"first_ns":[…],"count":[…]} by seq),
// DELETE /runs/R, GET /healthz.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const maxSeq = 10_000_000

type record struct {
	first []int64 // Unix ns of the first arrival, by seq; 0 = none yet
	count []int32
	calls int64
	held  int64 // calls being held now (sleep or hang)
	peak  int64
}

type sink struct {
	mu   sync.Mutex
	runs map[string]*record
}

func (s *sink) rec(run string) *record {
	r := s.runs[run]
	if r == nil {
		r = &record{}
		s.runs[run] = r
	}
	return r
}

func (s *sink) callback(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	run := r.PathValue("run")
	seq, err := strconv.Atoi(r.PathValue("seq"))
	if err != nil || seq < 0 || seq >= maxSeq {
		http.Error(w, "bad seq", http.StatusBadRequest)
		return
	}
	sleep, _ := strconv.Atoi(r.URL.Query().Get("sleep_ms"))
	hang := r.URL.Query().Get("hang") == "1"
	held := hang || sleep > 0
	s.mu.Lock()
	rec := s.rec(run)
	if seq >= len(rec.first) {
		n := max(seq+1, 2*len(rec.first))
		rec.first = append(rec.first, make([]int64, n-len(rec.first))...)
		rec.count = append(rec.count, make([]int32, n-len(rec.count))...)
	}
	if rec.first[seq] == 0 {
		rec.first[seq] = now
	}
	rec.count[seq]++
	rec.calls++
	if held {
		rec.held++
		rec.peak = max(rec.peak, rec.held)
	}
	s.mu.Unlock()
	if held {
		defer func() {
			s.mu.Lock()
			rec.held--
			s.mu.Unlock()
		}()
		var timer <-chan time.Time
		if !hang {
			t := time.NewTimer(time.Duration(sleep) * time.Millisecond)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-timer:
		case <-r.Context().Done():
			return
		}
	}
	io.WriteString(w, "ok")
}

func (s *sink) stats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rec := s.rec(r.URL.Query().Get("run"))
	var unique, dups int64
	for _, c := range rec.count {
		if c > 0 {
			unique++
			dups += int64(c) - 1
		}
	}
	out := map[string]int64{"received": rec.calls, "unique": unique, "duplicates": dups, "held": rec.held, "peak_held": rec.peak}
	s.mu.Unlock()
	json.NewEncoder(w).Encode(out)
}

func (s *sink) dump(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rec := s.rec(r.URL.Query().Get("run"))
	out := map[string]any{"first_ns": rec.first, "count": rec.count, "peak_held": rec.peak}
	b, err := json.Marshal(out)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// selfSigned makes a certificate for 127.0.0.1 and localhost and writes it (PEM) to certOut.
func selfSigned(certOut string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "peers bench sink"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certOut, pemBytes, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func loopback(addr string) {
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		log.Fatalf("listen on 127.0.0.1 only, not %q", addr)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "plain-HTTP listen address (127.0.0.1 only)")
	tlsAddr := flag.String("tls-addr", "", "also serve TLS here with a self-signed certificate (127.0.0.1 only)")
	certOut := flag.String("cert-out", "sink-cert.pem", "where to write the self-signed certificate (for SSL_CERT_FILE)")
	http1 := flag.Bool("tls-http1", false, "serve TLS with HTTP/1.1 only, as many application servers do")
	flag.Parse()
	s := &sink{runs: map[string]*record{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/cb/{run}/{seq}", s.callback)
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("GET /dump", s.dump)
	mux.HandleFunc("DELETE /runs/{run}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		delete(s.runs, r.PathValue("run"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })

	loopback(*addr)
	servers := []*http.Server{{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	errc := make(chan error, 2)
	if *tlsAddr != "" {
		// The certificate is written before /healthz answers, so a caller that waited for
		// /healthz can read it.
		loopback(*tlsAddr)
		cert, err := selfSigned(*certOut)
		if err != nil {
			log.Fatal(err)
		}
		ts := &http.Server{Addr: *tlsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		if *http1 {
			ts.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no HTTP/2
		}
		servers = append(servers, ts)
		go func() { errc <- ts.ListenAndServeTLS("", "") }()
	}
	go func() { errc <- servers[0].ListenAndServe() }()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-sigc:
	}
	for _, srv := range servers {
		srv.Close()
	}
}

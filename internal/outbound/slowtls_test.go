package outbound

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowTLSBounded: a target that accepts the connection and never answers the TLS
// handshake costs the caller no more than its own deadline.
func TestSlowTLSBounded(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	c := New(Options{Policy: &Policy{AllowPrivate: true}})
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+ln.Addr().String()+"/", nil)
	start := time.Now()
	_, err = c.Do(req, time.Second)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a silent TLS server gave no error")
	}
	if took > 3*time.Second {
		t.Errorf("silent TLS handshake took %v, want about the 1 s deadline", took)
	}
	if got := DescribeError(err, time.Second); got != "Request timeout after 1s" {
		t.Errorf("DescribeError = %q", got)
	}
}

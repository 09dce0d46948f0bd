package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// stampedPair returns a client connection and the server's end as stampArrivals accepts it.
func stampedPair(t *testing.T) (client net.Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := stampArrivals(ln) // before the dial: connections inherit the option from the listener
	defer sl.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if _, ok := server.(receiveStamper); !ok {
		t.Fatalf("accepted %T, want a connection that stamps its reads", server)
	}
	return client, server
}

// The stamp is when the data reached the socket, not when it was read.
func TestStampedConnReceiveTime(t *testing.T) {
	client, server := stampedPair(t)
	// The kernel turns stamping on asynchronously when the first socket asks for it.
	for i := 0; ; i++ {
		client.Write([]byte("x"))
		server.Read(make([]byte, 1))
		if server.(receiveStamper).lastReceived() != 0 {
			break
		}
		if i == 100 {
			t.Fatal("the kernel stamps no data")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent := time.Now()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	time.Sleep(200 * time.Millisecond) // the data waits in the socket
	buf := make([]byte, 16)
	n, err := server.Read(buf)
	read := time.Now()
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	got := time.Unix(0, server.(receiveStamper).lastReceived())
	if got.Before(sent.Truncate(time.Microsecond)) || got.After(written.Add(100*time.Millisecond)) {
		t.Fatalf("stamp %v: want between the write (%v … %v) and 100 ms after it; the read returned at %v",
			got.Format(time.StampMicro), sent.Format(time.StampMicro), written.Format(time.StampMicro),
			read.Format(time.StampMicro))
	}
}

// Apart from the stamps, the connection reads as a TCPConn does: data intact across many
// reads, io.EOF when the peer closes, deadlines as timeouts, Close unblocking a read.
func TestStampedConnReads(t *testing.T) {
	client, server := stampedPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() {
		client.Write(want)
		client.Close()
	}()
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes (want %d), equal %v, err %v", len(got), len(want), bytes.Equal(got, want), err)
	}
	if _, err := server.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}

	_, server = stampedPair(t)
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = server.Read(make([]byte, 8))
	var ne net.Error
	var oe *net.OpError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) ||
		!errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read past the deadline: %v (%T), want a timeout net.OpError with Op read", err, err)
	}

	_, server = stampedPair(t)
	server.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	server.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
}

func BenchmarkStampedConnRead(b *testing.B) {
	for _, stamped := range []bool{false, true} {
		b.Run(map[bool]string{false: "TCPConn", true: "stamped"}[stamped], func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			l := ln
			if stamped {
				l = stampArrivals(ln)
			}
			defer l.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			server, err := l.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			msg, buf := make([]byte, 512), make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				client.Write(msg)
				if _, err := io.ReadFull(server, buf[:len(msg)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

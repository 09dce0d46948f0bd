package main

import (
	"context"
	"net"
	"net/http"
	"time"
)

// The time a request arrived is when its bytes reached this machine, not when a goroutine
// got round to reading them. Under a burst the two differ by milliseconds: a request waits
// in its socket while the server works on the requests before it. A task's delay counts
// from its arrival, so that this wait does not make its timer late.
//
// Where the kernel can say when data arrived (Linux: SO_TIMESTAMPNS), stampArrivals wraps
// the listener so that each connection keeps the receive time of its latest read
// (arrival_linux.go); elsewhere a request arrives when its handler starts.

// maxArrivalAge bounds how far before its handler a request's arrival may lie. Beyond it
// (a clock step, a server stalled for a second) the handler's own time is used.
const maxArrivalAge = time.Second

// receiveStamper is a connection that knows when its latest read's data arrived.
type receiveStamper interface {
	// lastReceived is the receive time, in Unix nanoseconds, of the data the latest read
	// returned; 0 if unknown.
	lastReceived() int64
}

type arrivalKey struct{}

// arrivalContext is http.Server.ConnContext: it lets handlers find the connection.
func arrivalContext(ctx context.Context, c net.Conn) context.Context {
	if s, ok := c.(receiveStamper); ok {
		return context.WithValue(ctx, arrivalKey{}, s)
	}
	return ctx
}

// arrived returns when r arrived. The server reads a request's header before calling its
// handler, so the latest read on its connection returned the header's end (or bytes after
// it, of a request pipelined behind): its receive time is never before the client sent r.
func arrived(r *http.Request) time.Time {
	now := time.Now()
	s, ok := r.Context().Value(arrivalKey{}).(receiveStamper)
	if !ok {
		return now
	}
	wait := time.Duration(now.UnixNano() - s.lastReceived())
	if wait < 0 || wait > maxArrivalAge {
		return now
	}
	return now.Add(-wait) // keeps now's monotonic reading
}

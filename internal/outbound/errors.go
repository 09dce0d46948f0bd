package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// maxCauseLength keeps a described error short enough for a task's error field.
const maxCauseLength = 200

// IsBlocked reports whether err comes from the address policy.
func IsBlocked(err error) bool {
	_, ok := errors.AsType[*BlockedError](err)
	return ok
}

// DescribeError turns an error from Do into a short message for a task's error field:
// "Blocked target: …", "Request timeout after 30s" (timeout is the limit the caller set),
// "Request canceled", or "Network error: <cause>" such as "connection refused" or
// "no such host example.invalid". It returns "" for a nil error.
func DescribeError(err error, timeout time.Duration) string {
	if err == nil {
		return ""
	}
	if be, ok := errors.AsType[*BlockedError](err); ok {
		return "Blocked target: " + be.Error()
	}
	if IsTimeout(err) {
		if timeout <= 0 {
			return "Request timeout"
		}
		return "Request timeout after " + formatTimeout(timeout)
	}
	if errors.Is(err, context.Canceled) {
		return "Request canceled"
	}
	return "Network error: " + shortCause(err)
}

// IsTimeout reports whether err is a call that ran out of time: the caller's deadline, or
// a connection's.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// formatTimeout writes whole seconds ("30s", "90s" rather than "1m30s");
// a limit under a second keeps its own unit so it never reads "0s".
func formatTimeout(d time.Duration) string {
	if d < time.Second {
		return d.String()
	}
	return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
}

func shortCause(err error) string {
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		if de.IsNotFound {
			return "no such host " + de.Name
		}
		return fmt.Sprintf("DNS lookup of %s failed: %s", de.Name, de.Err)
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "server closed the connection"
	}
	if ce, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "TLS certificate: " + ce.Err.Error()
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return "server did not answer with TLS"
	}
	// Peel the wrappers that only repeat the method, URL and address.
	for {
		switch e := err.(type) {
		case *url.Error:
			err = e.Err
			continue
		case *net.OpError:
			err = e.Err
			continue
		case *os.SyscallError:
			err = e.Err
			continue
		}
		break
	}
	msg := strings.TrimPrefix(err.Error(), "net/http: ")
	if len(msg) > maxCauseLength {
		msg = strings.ToValidUTF8(msg[:maxCauseLength], "") + "…"
	}
	return msg
}

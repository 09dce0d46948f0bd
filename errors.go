package main

// What a handler's error comes to, for the API (JSON) and the admin page (an error page)
// alike: one mapping, so both say the same thing for the same failure.

import (
	"context"
	"errors"
	"net/http"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// answerFor maps a handler's error to the status and message the client is told, and logs
// what is ours to log: a storage failure or an internal error with its detail (what names
// the caller in the log line), a body that came too slowly at debug level. closeConn says
// the request's body was not read to its end, so its connection should not be reused.
// It returns nil when there is nothing to answer: the client went away.
func (a *App) answerFor(r *http.Request, err error, what string) (e *Error, closeConn bool) {
	var mbe *http.MaxBytesError
	se := storageError(err)
	switch {
	case errors.As(err, &e):
	case se != nil: // a full disk or an I/O error: 507 or 503, nothing was stored
		e = se
		a.log.Error("storage", "method", r.Method, "path", redactPath(r.URL.Path), "err", err)
	case errors.As(err, &mbe):
		e, closeConn = errorf(http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes", mbe.Limit), true
	case errors.Is(err, context.Canceled):
		return nil, false
	case isTimeout(err):
		// The client sent its body too slowly (ReadTimeout): its fault, not ours.
		e, closeConn = &Error{http.StatusRequestTimeout, "Request body was not received in time"}, true
		a.log.Debug("request timed out", "method", r.Method, "path", redactPath(r.URL.Path))
	default:
		a.log.Error(what, "method", r.Method, "path", redactPath(r.URL.Path), "err", err)
		e = &Error{http.StatusInternalServerError, "Internal error"}
	}
	return e, closeConn
}

// storageError maps the store's "full" and "unavailable" errors to answers a client can
// act on; the failed write was rolled back, so nothing partial was stored.
func storageError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrFull):
		return &Error{http.StatusInsufficientStorage, "The database is full (disk space or --max-db-size); nothing was stored. Free space and retry"}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, "The database could not write to disk; nothing was stored. Retry later"}
	}
	return nil
}

package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// classify makes an error of the database answerable by errors.Is with store.ErrFull or
// store.ErrUnavailable (https://www.postgresql.org/docs/current/errcodes-appendix.html);
// the original error stays in the chain and its text is unchanged.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	if errors.Is(err, store.ErrFull) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.Code == "53100": // disk_full
			kind = store.ErrFull
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin/crash shutdown, cannot connect now
			pe.Code == "57014",                     // query_canceled: statement_timeout
			pe.Code == "55P03",                     // lock_not_available: lock_timeout
			pe.Code == "53200", pe.Code == "53300", // out of memory, too many connections
			pe.Code == "40001", pe.Code == "40P01": // a conflict still there after the retries

			kind = store.ErrUnavailable
		default:
			return err
		}
	case connLost(err):
		kind = store.ErrUnavailable
	default:
		return err
	}
	return &classified{kind: kind, err: err}
}

// connLost reports whether err says the connection failed or could not be made (not a
// statement's error).
func connLost(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "conn busy")
}

// retryable reports whether a transaction that failed with err should run again whole: a
// serialization failure or a deadlock (40001, 40P01), or a connection lost before COMMIT.
func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return false // the server did not answer within the bound: another try would wait as long
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" || strings.HasPrefix(pe.Code, "08") ||
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return connLost(err)
}

// classified is a database error with the store's sentinel for it.
type classified struct{ kind, err error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.kind, e.err} }

// notFound turns pgx's "no rows" into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

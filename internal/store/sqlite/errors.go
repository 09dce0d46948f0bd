package sqlite

import (
	"database/sql"
	"errors"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

var _ store.Store = (*Store)(nil)

// SQLite's primary result codes that the store's sentinel errors stand for
// (https://www.sqlite.org/rescode.html).
const (
	codeBusy   = 5
	codeLocked = 6
	codeIOErr  = 10
	codeFull   = 13
)

// sqliteCode returns the primary result code of the SQLite error in err's chain, or 0.
func sqliteCode(err error) int {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return 0
	}
	return se.Code() & 0xff
}

// classify makes an error of the database answerable by errors.Is with store.ErrFull or
// store.ErrUnavailable; the SQLite error stays in the chain (for Explain).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch sqliteCode(err) {
	case codeFull:
		kind = store.ErrFull
	case codeIOErr, codeBusy, codeLocked:
		kind = store.ErrUnavailable
	default:
		return err
	}
	if errors.Is(err, kind) {
		return err
	}
	return &classified{kind: kind, err: err}
}

// classified is an SQLite error with the store's sentinel for it.
type classified struct{ kind, err error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.kind, e.err} }

// notFound turns database/sql's "no rows" into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

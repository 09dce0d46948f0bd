package sqlite

import (
	"errors"
	"fmt"
)

// Explain turns an error from opening or first writing the database at path into one that
// names the file, the cause and what to do; other errors come back as they are.
func Explain(path string, err error) error {
	var se interface{ Code() int }
	if err == nil || !errors.As(err, &se) {
		return err
	}
	var advice string
	switch se.Code() & 0xff {
	case 8, 3, 23: // SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH
		advice = "is not writable by this process: make the file, its -wal and -shm files and their directory writable by the user running asyncqueue (or run it as the file's owner)"
	case 11: // SQLITE_CORRUPT
		advice = "is damaged: stop the server, keep a copy of the file, and restore it from your latest backup (see `asyncqueue backup`)"
	case 26: // SQLITE_NOTADB
		advice = "is not an SQLite database: check --db, or restore the file from your latest backup (see `asyncqueue backup`)"
	case 14: // SQLITE_CANTOPEN
		advice = "cannot be opened: check that its directory exists and that the file and directory are readable and writable"
	case 13: // SQLITE_FULL
		advice = "cannot grow: the disk (or --max-db-size) is full; free space or raise the limit"
	case 10: // SQLITE_IOERR
		advice = "could not be read or written (an I/O error): check the disk and the system log"
	default:
		return err
	}
	return &explained{msg: fmt.Sprintf("database %s %s (%v)", path, advice, err), err: err}
}

type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

//go:build !linux

package sqlite

import "os"

// fdatasync flushes f to disk; outside Linux, a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

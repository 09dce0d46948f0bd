package sqlite

import (
	"errors"
	"strings"
	"testing"
)

type codeErr int

func (c codeErr) Error() string { return "sqlite error" }
func (c codeErr) Code() int     { return int(c) }

func TestExplain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		code int
		want string
	}{
		{8, "not writable"},
		{8 | 3<<8, "not writable"}, // an extended code: SQLITE_READONLY_ROLLBACK
		{11, "restore it from your latest backup"},
		{26, "not an SQLite database"},
		{14, "directory exists"},
		{13, "full"},
	} {
		err := Explain("/data/aq.db", codeErr(c.code))
		if !strings.Contains(err.Error(), "/data/aq.db") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("code %d: %q, want the file and %q", c.code, err, c.want)
		}
		var ce codeErr
		if !errors.As(err, &ce) {
			t.Errorf("code %d: the cause is not kept", c.code)
		}
	}
	plain := errors.New("other")
	if Explain("/data/aq.db", plain) != plain || Explain("/data/aq.db", codeErr(19)).Error() != "sqlite error" {
		t.Error("errors that need no explaining changed")
	}
}

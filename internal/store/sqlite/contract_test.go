package sqlite

import (
	"errors"
	"fmt"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/storetest"
)

// The store contract, run on this backend under both sync modes.
func TestContract(t *testing.T) {
	var backends []storetest.Backend
	for _, sync := range []string{"full", "normal"} {
		backends = append(backends, storetest.Backend{
			Name: "sqlite-" + sync,
			Open: func(t *testing.T) store.Store {
				s, _ := openTest(t, Options{Sync: sync})
				return s
			},
			OpenSmall: func(t *testing.T) store.Store {
				s, _ := openTest(t, Options{Sync: sync, MaxSize: 1 << 20})
				return s
			},
		})
	}
	storetest.RunAll(t, backends)
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error // nil: left as it is
	}{
		{codeErr(13), store.ErrFull},
		{fmt.Errorf("insert task: %w", codeErr(13)), store.ErrFull},
		{codeErr(10), store.ErrUnavailable},
		{codeErr(10 | 3<<8), store.ErrUnavailable}, // SQLITE_IOERR_WRITE
		{codeErr(5), store.ErrUnavailable},
		{codeErr(6), store.ErrUnavailable},
		{codeErr(19), nil}, // SQLITE_CONSTRAINT: the caller's mistake, not the database's state
		{errors.New("boom"), nil},
		{store.ErrStale, nil},
	} {
		got := classify(c.err)
		if !errors.Is(got, c.err) {
			t.Errorf("classify(%v) = %v: lost the original error", c.err, got)
		}
		for _, sentinel := range []error{store.ErrFull, store.ErrUnavailable} {
			if errors.Is(got, sentinel) != (sentinel == c.want) {
				t.Errorf("classify(%v): errors.Is(%v) = %v", c.err, sentinel, !(sentinel == c.want))
			}
		}
		if got.Error() != c.err.Error() {
			t.Errorf("classify(%v) reads %q", c.err, got.Error())
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
	var code interface{ Code() int }
	if !errors.As(classify(codeErr(13)), &code) || code.Code() != 13 {
		t.Error("the SQLite error is not in the classified error's chain (Explain reads it)")
	}
}

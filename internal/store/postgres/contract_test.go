package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/storetest"

	"github.com/jackc/pgx/v5/pgconn"
)

func testSchema(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "schema_postgres.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openTest opens a store on url as node, closed when t ends.
func openTest(t testing.TB, url, node string, o Options) *Store {
	t.Helper()
	o.URL, o.Node, o.Schema = url, node, testSchema(t)
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The store contract, each case on a fresh database.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Name: "postgres",
		Open: func(t *testing.T) store.Store {
			return openTest(t, pgtest.Database(t), "node-a", Options{})
		},
		// OpenSmall: PostgreSQL has no size cap to fill; a full disk (53100) maps to
		// ErrFull (TestClassify).
		NoBackup: true,
	})
}

func TestClassify(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	for _, c := range []struct {
		err  error
		want error // nil: left as it is
	}{
		{pg("53100"), store.ErrFull},
		{fmt.Errorf("insert task: %w", pg("53100")), store.ErrFull},
		{pg("08006"), store.ErrUnavailable},
		{pg("57P01"), store.ErrUnavailable},
		{pg("57P03"), store.ErrUnavailable},
		{pg("57014"), store.ErrUnavailable},
		{pg("55P03"), store.ErrUnavailable},
		{pg("40P01"), store.ErrUnavailable},
		{pg("23505"), nil}, // a unique violation: the caller's mistake, not the database's state
		{context.DeadlineExceeded, store.ErrUnavailable},
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
	if notFound(fmt.Errorf("x: %w", errors.New("y"))) == store.ErrNotFound {
		t.Error("notFound took any error for no rows")
	}
}

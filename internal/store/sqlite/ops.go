package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Ping checks that the read pool answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.get(ctx, &one, "select 1")
}

// Backup writes the copy with VACUUM INTO, which reads one snapshot: every task committed
// before the backup started is in it, and nothing half-written is. The copy is then
// opened read-only and checked (PRAGMA integrity_check).
func (s *Store) Backup(ctx context.Context, to string) (int64, error) {
	// On the writer handle's second connection: the read pool is query_only.
	if _, err := s.wdb.ExecContext(ctx, `vacuum into ?`, to); err != nil {
		return 0, fmt.Errorf("backup: %w", classify(err))
	}
	db, err := sql.Open("sqlite", "file:"+to+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `pragma integrity_check`).Scan(&check); err != nil || check != "ok" {
		return 0, fmt.Errorf("backup %s failed its integrity check: %v %s", to, err, check)
	}
	var tasks int64
	if err := db.QueryRowContext(ctx, `select count(*) from tasks`).Scan(&tasks); err != nil {
		return 0, fmt.Errorf("backup %s: count its tasks: %w", to, err)
	}
	return tasks, nil
}

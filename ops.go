package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// BackupCmd copies the database consistently while the server runs.
type BackupCmd struct {
	DBFlag `embed:""`
	To     string `help:"File to write the copy to (must not exist unless --force)." required:"" type:"path"`
	Force  bool   `help:"Overwrite --to if it exists."`
}

// Run writes the copy with VACUUM INTO, which reads one snapshot: every task committed
// before the backup started is in it, and nothing half-written is.
func (c *BackupCmd) Run(ctx context.Context, cli *CLI) error {
	if isPostgres(cli.DB) {
		return fmt.Errorf("asyncqueue backup copies an SQLite file; back up a PostgreSQL database with its own tools, "+
			"e.g. pg_dump --format=custom --file=aq.dump '%s' (and keep the --vault-key with it)", redactURL(cli.DB))
	}
	if _, err := os.Stat(cli.DB); err != nil {
		return fmt.Errorf("database %s: %w", cli.DB, err)
	}
	if _, err := os.Stat(c.To); err == nil {
		if !c.Force {
			return fmt.Errorf("%s exists; pass --force to overwrite it", c.To)
		}
		if err := os.Remove(c.To); err != nil {
			return err
		}
	}
	st, err := openStore(cli.DB, "", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	tasks, err := st.Backup(ctx, c.To)
	if err != nil {
		return err
	}
	if err := os.Chmod(c.To, 0o600); err != nil {
		return err
	}
	fi, _ := os.Stat(c.To)
	fmt.Fprintf(os.Stderr, "backed up %s to %s: %d tasks, %d bytes, %s, integrity ok\n",
		cli.DB, c.To, tasks, fi.Size(), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "keep %s.vault-key (or your --vault-key) with it: vault tokens cannot be read without it\n", cli.DB)
	return nil
}

// pruneLoop deletes finished tasks older than the retention window, a few hundred per
// write so that the API never waits long behind it.
func (d *dispatcher) pruneLoop(retention time.Duration) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(min(time.Minute, max(retention/2, time.Second)))
	defer t.Stop()
	for {
		if n, err := d.prune(time.Now().Add(-retention), pruneBatch, 10_000); err != nil && d.runCtx.Err() == nil {
			d.a.log.Error("prune finished tasks", "err", err)
		} else if n > 0 {
			d.a.log.Info("pruned finished tasks", "tasks", n, "older_than", retention)
		}
		select {
		case <-d.runCtx.Done():
			return
		case <-t.C:
		}
	}
}

const pruneBatch = 500

// prune deletes up to limit terminal tasks that finished before cutoff (and whose webhook is
// settled), batch at a time; it returns how many went.
func (d *dispatcher) prune(cutoff time.Time, batch, limit int) (int, error) {
	teams, err := d.a.store.Teams(d.runCtx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, team := range teams {
		for total < limit {
			var n int
			err := d.a.store.Write(d.runCtx, func(tx store.Tx) (err error) {
				n, err = tx.PruneTasks(team.ID, cutoff.UnixMilli(), batch)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
			if n < batch {
				break
			}
			time.Sleep(10 * time.Millisecond) // let other writes through
		}
	}
	return total, nil
}

package store

// Flow is a flow's stored settings (SPEC §10).
type Flow struct {
	TeamID        string   `db:"team_id"`
	Key           string   `db:"key"`
	Parallelism   *int     `db:"parallelism"`
	RatePerSecond *float64 `db:"rate_per_second"`
	Paused        bool     `db:"paused"`
	PausedUntil   *int64   `db:"paused_until"`
	UpdatedAt     int64    `db:"updated_at"`
}

// Schedule is one row of the schedules table: a task body made into a task at each run.
type Schedule struct {
	ID         string  `db:"id"`
	TeamID     string  `db:"team_id"`
	Cron       *string `db:"cron"`
	Every      *string `db:"every"`
	Timezone   string  `db:"timezone"`
	Task       string  `db:"task"`
	Paused     bool    `db:"paused"`
	NextRunAt  *int64  `db:"next_run_at"`
	LastRunAt  *int64  `db:"last_run_at"`
	LastTaskID *string `db:"last_task_id"`
	LastError  *string `db:"last_error"`
	CreatedAt  int64   `db:"created_at"`
	UpdatedAt  int64   `db:"updated_at"`
}

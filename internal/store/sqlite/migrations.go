package sqlite

// migrations[i] moves a database from schema version i+1 to i+2, in the same transaction
// as schema.sql (version 1, applied with "if not exists" on every start). A fresh database
// runs them all. Append only: a released step is never edited.
var migrations = []string{
	// 2: flows (SPEC §10). A task's flow_key is the key it was given; null means its
	// target's origin. flows holds the settings made for a key, and a pause a target asked for.
	`alter table tasks add column flow_key text;
create table if not exists flows (
  team_id text not null references teams (id),
  key text not null,
  parallelism integer,          -- null: the server's --flow-parallelism
  rate_per_second real,         -- null: no rate limit
  paused integer not null default 0,
  paused_until integer,         -- a target's Retry-After, Unix ms
  updated_at integer not null,
  primary key (team_id, key)
) strict;
alter table attempts add column response_body text; -- a failed call's answer, capped`,
	// 3: schedules (recurring tasks) and the schedule a task was made by.
	`create table schedules (
  id text primary key,          -- sch_ + UUIDv7: never mistaken for a task id in the timer queue
  team_id text not null references teams (id),
  cron text,                    -- exactly one of cron and every
  every text,
  timezone text not null,
  task text not null,           -- the create body of each run's task (JSON, validated)
  paused integer not null default 0,
  next_run_at integer,          -- the schedule's durable timer; NULL while paused
  last_run_at integer,
  last_task_id text,
  last_error text,              -- why the last run made no task, if it made none
  created_at integer not null,
  updated_at integer not null
) strict;
create index schedules_team_id_id_idx on schedules (team_id, id);
create index schedules_next_run_at_idx on schedules (next_run_at, id) where next_run_at is not null;
alter table tasks add column schedule_id text;
create index tasks_schedule_id_id_idx on tasks (schedule_id, id) where schedule_id is not null;`,
}

package store

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
}

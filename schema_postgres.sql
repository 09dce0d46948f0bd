-- asyncqueue schema for PostgreSQL (14 or newer): several nodes on one database (SPEC §12).
-- It mirrors schema.sql and the SQLite migrations column for column, with the same table and
-- column names, so that moving a database from SQLite is a copy of each table. Times are
-- bigint Unix milliseconds (UTC); JSON documents are text; SQLite's integer flags are boolean.
-- Ids and keys compare with the "C" collation: byte order, as in SQLite, whatever the
-- database's locale (ids are UUIDv7, so id order is creation order).
--
-- This file is schema version 1, applied once to an empty database under an advisory lock
-- (internal/store/postgres); later versions are steps appended to its migration list.
-- PostgreSQL-only: tasks.claimed_by, nodes, schema_version.

create table if not exists schema_version (
  version integer not null
);

create table if not exists teams (
  id text collate "C" primary key,
  name text collate "C" not null unique,
  webhook_secret text not null,
  -- During rotation the previous secret keeps signing until prev_secret_until (24 h).
  prev_webhook_secret text,
  prev_secret_until bigint,
  created_at bigint not null
);

create table if not exists api_keys (
  id text collate "C" primary key,
  team_id text collate "C" not null references teams (id),
  hash bytea not null unique,   -- SHA-256 of the raw key; the key itself is never stored
  prefix text not null,         -- first characters, safe to show
  name text not null default '',
  created_at bigint not null,
  last_used_at bigint,
  revoked_at bigint
);

create index if not exists api_keys_team_id_idx on api_keys (team_id);

create table if not exists tasks (
  id text collate "C" primary key, -- UUIDv7, so ordering by id is ordering by creation
  team_id text collate "C" not null references teams (id),
  status text collate "C" not null,
  target_url text not null,
  target_host text collate "C" not null, -- lower-case host of target_url, for the targetHost filter
  method text not null,
  headers text not null default '{}',
  body text,
  timeout_ms bigint not null,
  delay_until bigint,
  max_retries integer not null,
  retry_backoff text not null,
  priority integer not null,
  on_complete_url text,
  wait_for_signal boolean not null default false,
  max_wait_ms bigint not null,
  heartbeat_timeout_ms bigint,
  retry_count integer not null default 0,
  attempts integer not null default 0,
  start_result text,
  result text,
  error text,
  signal_hash bytea,            -- SHA-256 of the one-time signal token (unique, see below)
  callback_hash bytea,          -- SHA-256 of the provider callback id (unique, see below)
  callback_nonce bytea,         -- the callback id is HMAC(vault key, nonce): never stored itself
  provider text,                -- built-in polling template id
  poll_config text,             -- polling configuration (JSON), resolved at create
  poll_count integer not null default 0,
  signal text,                  -- the signal that resolved the task (for idempotent replay)
  buffered_signal text,         -- a signal that arrived before the callback was answered
  progress text,
  last_heartbeat_at bigint,
  on_complete text,             -- webhook delivery outcome {status, attempts, lastError}
  created_at bigint not null,
  started_at bigint,
  waiting_since bigint,
  expires_at bigint,
  completed_at bigint,
  -- The one durable timer of a task. Its meaning follows status: delayed → run time,
  -- pending → when it became due, processing → lease end (now + timeout + lease slack),
  -- waiting → expiry or heartbeat deadline, terminal → next completion-webhook attempt.
  -- NULL means no timer.
  due_at bigint,
  flow_key text collate "C",    -- as given at create; null: the target's origin
  schedule_id text collate "C", -- the schedule whose run made the task
  -- The node whose call holds the task while it is processing; null otherwise.
  claimed_by text collate "C"
);

create index if not exists tasks_due_at_idx on tasks (due_at, id) where due_at is not null;
create index if not exists tasks_team_id_id_idx on tasks (team_id, id);
-- Partial, so the many tasks without a token or callback cost no index entry.
create unique index if not exists tasks_signal_hash_idx on tasks (signal_hash) where signal_hash is not null;
create unique index if not exists tasks_callback_hash_idx on tasks (callback_hash) where callback_hash is not null;
create index if not exists tasks_team_id_status_id_idx on tasks (team_id, status, id);
create index if not exists tasks_team_id_target_host_id_idx on tasks (team_id, target_host, id);
create index if not exists tasks_schedule_id_id_idx on tasks (schedule_id, id) where schedule_id is not null;
-- Completed/failed per minute over the last hour.
create index if not exists tasks_team_id_completed_at_status_idx on tasks (team_id, completed_at, status)
  where completed_at is not null;
-- The waiting tasks that expire soonest.
create index if not exists tasks_team_id_expires_at_idx on tasks (team_id, expires_at) where status = 'waiting';
-- A node's own claims, for its crash recovery: only processing tasks have an entry.
create index if not exists tasks_claimed_by_idx on tasks (claimed_by) where claimed_by is not null;

-- Token Vault: secrets sealed with AES-256-GCM (internal/vault), resolved only when sending.
create table if not exists vault_tokens (
  id text collate "C" primary key, -- tok_…
  team_id text collate "C" not null references teams (id),
  name text not null,
  sealed bytea not null,
  created_at bigint not null,
  deleted_at bigint
);

create index if not exists vault_tokens_team_id_idx on vault_tokens (team_id);

-- Signals, heartbeats and provider callbacks a task received, for its history.
create table if not exists task_events (
  id bigint generated by default as identity primary key,
  task_id text collate "C" not null references tasks (id) on delete cascade,
  at bigint not null,
  kind text not null,           -- signal, signal.buffered, heartbeat, callback, callback.buffered
  detail text                   -- JSON: the signal, the progress, the callback body
);

create index if not exists task_events_task_id_id_idx on task_events (task_id, id);

create table if not exists attempts (
  task_id text collate "C" not null references tasks (id) on delete cascade,
  attempt integer not null,
  started_at bigint not null,
  duration_ms bigint not null,
  status_code integer,
  error text,
  response_body text,           -- a failed call's answer, capped
  primary key (task_id, attempt)
);

create table if not exists idempotency_keys (
  team_id text collate "C" not null,
  key text collate "C" not null,
  request_hash bytea not null,
  task_id text collate "C" not null,
  created_at bigint not null,
  primary key (team_id, key)
);

create index if not exists idempotency_keys_created_at_idx on idempotency_keys (created_at);

-- Admin page. A login session is stored only as the SHA-256 of its random id; it ends at
-- expires_at, at logout, or as soon as the API key it was opened with is revoked.
create table if not exists admin_sessions (
  id_hash bytea primary key,
  team_id text collate "C" not null references teams (id),
  key_id text collate "C" not null references api_keys (id),
  created_at bigint not null,
  expires_at bigint not null
);

create index if not exists admin_sessions_expires_at_idx on admin_sessions (expires_at);

-- Flows (SPEC §10): the settings made for a key, and a pause a target asked for.
create table if not exists flows (
  team_id text collate "C" not null references teams (id),
  key text collate "C" not null,
  parallelism integer,          -- null: the server's --flow-parallelism
  rate_per_second double precision, -- null: no rate limit
  paused boolean not null default false,
  paused_until bigint,          -- a target's Retry-After, Unix ms
  updated_at bigint not null,
  primary key (team_id, key)
);

-- Schedules: recurring tasks.
create table if not exists schedules (
  id text collate "C" primary key, -- sch_ + UUIDv7: never mistaken for a task id in the timer queue
  team_id text collate "C" not null references teams (id),
  cron text,                    -- exactly one of cron and every
  every text,
  timezone text not null,
  task text not null,           -- the create body of each run's task (JSON, validated)
  paused boolean not null default false,
  next_run_at bigint,           -- the schedule's durable timer; NULL while paused
  last_run_at bigint,
  last_task_id text collate "C",
  last_error text,              -- why the last run made no task, if it made none
  created_at bigint not null,
  updated_at bigint not null
);

create index if not exists schedules_team_id_id_idx on schedules (team_id, id);
create index if not exists schedules_next_run_at_idx on schedules (next_run_at, id) where next_run_at is not null;

-- The nodes sharing the database: each upserts its row every few seconds (a heartbeat);
-- those seen recently are live.
create table if not exists nodes (
  id text collate "C" primary key,
  started_at bigint not null,
  seen_at bigint not null
);

-- What every node must agree on, set by the first node that starts: vault_key_check is an
-- HMAC of a fixed text under the vault key, so that a node started with another key
-- refuses to start instead of sealing tokens and making callback ids the others cannot read.
create table if not exists settings (
  name text primary key,
  value text not null
);

-- asyncqueue schema. Times are integer Unix milliseconds (UTC); JSON documents are text.
-- The version lives in PRAGMA user_version and is checked at start-up (internal/store).

create table if not exists teams (
  id text primary key,
  name text not null unique,
  webhook_secret text not null,
  -- During rotation the previous secret keeps signing until prev_secret_until (24 h).
  prev_webhook_secret text,
  prev_secret_until integer,
  created_at integer not null
) strict;

create table if not exists api_keys (
  id text primary key,
  team_id text not null references teams (id),
  hash blob not null unique,   -- SHA-256 of the raw key; the key itself is never stored
  prefix text not null,        -- first characters, safe to show
  name text not null default '',
  created_at integer not null,
  last_used_at integer,
  revoked_at integer
) strict;

create index if not exists api_keys_team_id_idx on api_keys (team_id);

create table if not exists tasks (
  id text primary key,          -- UUIDv7, so ordering by id is ordering by creation
  team_id text not null references teams (id),
  status text not null,
  target_url text not null,
  target_host text not null,    -- lower-case host of target_url, for the targetHost filter
  method text not null,
  headers text not null default '{}',
  body text,
  timeout_ms integer not null,
  delay_until integer,
  max_retries integer not null,
  retry_backoff text not null,
  priority integer not null,
  on_complete_url text,
  wait_for_signal integer not null default 0,
  max_wait_ms integer not null,
  heartbeat_timeout_ms integer,
  retry_count integer not null default 0,
  attempts integer not null default 0,
  start_result text,
  result text,
  error text,
  signal_hash blob,             -- SHA-256 of the one-time signal token (unique, see below)
  callback_hash blob,           -- SHA-256 of the provider callback id (unique, see below)
  callback_nonce blob,          -- the callback id is HMAC(vault key, nonce): never stored itself
  provider text,                -- built-in polling template id
  poll_config text,             -- polling configuration (JSON), resolved at create
  poll_count integer not null default 0,
  signal text,                  -- the signal that resolved the task (for idempotent replay)
  buffered_signal text,         -- a signal that arrived before the callback was answered
  progress text,
  last_heartbeat_at integer,
  on_complete text,             -- webhook delivery outcome {status, attempts, lastError}
  created_at integer not null,
  started_at integer,
  waiting_since integer,
  expires_at integer,
  completed_at integer,
  -- The one durable timer of a task. Its meaning follows status: delayed → run time,
  -- pending → when it became due, processing → lease end, waiting → expiry or heartbeat
  -- deadline, terminal → next completion-webhook attempt. NULL means no timer.
  due_at integer
) strict;

create index if not exists tasks_due_at_idx on tasks (due_at, id) where due_at is not null;
create index if not exists tasks_team_id_id_idx on tasks (team_id, id);
-- Partial, so the many tasks without a token or callback cost no index entry.
create unique index if not exists tasks_signal_hash_idx on tasks (signal_hash) where signal_hash is not null;
create unique index if not exists tasks_callback_hash_idx on tasks (callback_hash) where callback_hash is not null;
create index if not exists tasks_team_id_status_id_idx on tasks (team_id, status, id);
create index if not exists tasks_team_id_target_host_id_idx on tasks (team_id, target_host, id);
-- Crash recovery finds the processing tasks through tasks_team_id_status_id_idx; the
-- separate index it once had cost every task two more index writes.
drop index if exists tasks_processing_idx;

-- Token Vault: secrets sealed with AES-256-GCM (internal/vault), resolved only when sending.
create table if not exists vault_tokens (
  id text primary key,          -- tok_…
  team_id text not null references teams (id),
  name text not null,
  sealed blob not null,
  created_at integer not null,
  deleted_at integer
) strict;

create index if not exists vault_tokens_team_id_idx on vault_tokens (team_id);

-- Signals, heartbeats and provider callbacks a task received, for its history.
create table if not exists task_events (
  id integer primary key,
  task_id text not null references tasks (id) on delete cascade,
  at integer not null,
  kind text not null,           -- signal, signal.buffered, heartbeat, callback, callback.buffered
  detail text                   -- JSON: the signal, the progress, the callback body
) strict;

create index if not exists task_events_task_id_id_idx on task_events (task_id, id);

create table if not exists attempts (
  task_id text not null references tasks (id) on delete cascade,
  attempt integer not null,
  started_at integer not null,
  duration_ms integer not null,
  status_code integer,
  error text,
  primary key (task_id, attempt)
) strict, without rowid;

create table if not exists idempotency_keys (
  team_id text not null,
  key text not null,
  request_hash blob not null,
  task_id text not null,
  created_at integer not null,
  primary key (team_id, key)
) strict, without rowid;

create index if not exists idempotency_keys_created_at_idx on idempotency_keys (created_at);

-- Admin page (admin.go, internal/store/admin.go).
-- A login session is stored only as the SHA-256 of its random id; it ends at expires_at, at
-- logout, or as soon as the API key it was opened with is revoked.
create table if not exists admin_sessions (
  id_hash blob primary key,
  team_id text not null references teams (id),
  key_id text not null references api_keys (id),
  created_at integer not null,
  expires_at integer not null
) strict, without rowid;

create index if not exists admin_sessions_expires_at_idx on admin_sessions (expires_at);
-- Completed/failed per minute over the last hour, read from the index alone.
create index if not exists tasks_team_id_completed_at_status_idx on tasks (team_id, completed_at, status)
  where completed_at is not null;
-- The waiting tasks that expire soonest.
create index if not exists tasks_team_id_expires_at_idx on tasks (team_id, expires_at) where status = 'waiting';

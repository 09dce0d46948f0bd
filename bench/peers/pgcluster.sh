# A throwaway PostgreSQL cluster for the benchmarks, sourced by run.sh here and by
# bench/nodes/run.sh (bash). It never touches a cluster it did not start.
#
#   pg_start            initdb into a new temporary directory, start the server on a free
#                       loopback port; sets PG_PORT, PG_PID (the postmaster), PG_DIR
#   pg_stop             stop it (pg_ctl, then its PID) and delete the directory
#   pg_createdb NAME    a fresh, empty database; echoes its URL
#   pg_dropdb NAME
#   pg_settings         one line: the server's version and the settings that bear on commits
#   pg_stats_reset      zero the cluster's WAL counters (and pg_stat_statements' when loaded)
#   pg_counters NAME    "commits rollbacks wal_syncs wal_records wal_bytes": the database's
#                       transactions since it was created, the cluster's WAL since pg_stats_reset
#                       (a backend reports its counts when it ends: read them after the clients)
#   pg_statements NAME  the statements of that database, most total time first (PG_STATEMENTS=1)
#
# Knobs: PG_BIN [newest /usr/lib/postgresql/*/bin, else PATH], PG_PORT_FROM [25432] (the
# first port tried), PG_MAX_CONNECTIONS [200]. Settings are PostgreSQL's defaults except
# listen_addresses = 127.0.0.1 (no Unix socket but one in PG_DIR) and max_connections;
# PG_STATEMENTS=1 loads pg_stat_statements (a diagnosis, not a measurement: it costs a little).
# PG_EXTERNAL = postgres://user@host:port uses a server you run instead (pg_start then only
# checks that it answers; PG_PID stays empty, so no PostgreSQL CPU figures).
# As root, the server runs as the postgres OS user (PostgreSQL refuses to run as root).

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
PG_PORT_FROM=${PG_PORT_FROM:-25432}
PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}
PG_EXTERNAL=${PG_EXTERNAL:-}
PG_STATEMENTS=${PG_STATEMENTS:-0}
PG_PORT=""; PG_PID=""; PG_DIR=""; PG_BASE_URL=""

pg_tool() { # name: the path of a PostgreSQL program
  if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/$1" ]; then echo "$PG_BIN/$1"; else command -v "$1"; fi
}

pg_as() { # the server's programs run as the postgres user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_port_free() { # port: nothing listens on 127.0.0.1:port
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start() {
  if [ -n "$PG_EXTERNAL" ]; then
    PG_BASE_URL=${PG_EXTERNAL%/}
    pg_psql postgres -c 'select 1' >/dev/null || { echo "PG_EXTERNAL=$PG_EXTERNAL does not answer" >&2; return 1; }
    return 0
  fi
  local initdb pgctl
  initdb=$(pg_tool initdb) && pgctl=$(pg_tool pg_ctl) || { echo "PostgreSQL's initdb/pg_ctl not found (PG_BIN)" >&2; return 1; }
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aq-bench-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DIR"; fi
  pg_as "$initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
    || { echo "initdb failed: see $PG_DIR/initdb.log" >&2; return 1; }
  local p=$PG_PORT_FROM
  while ! pg_port_free "$p"; do p=$((p + 1)); done
  PG_PORT=$p
  pg_as "$pgctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=$PG_MAX_CONNECTIONS$(
      [ "$PG_STATEMENTS" = 1 ] && echo " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all")" start >/dev/null \
    || { echo "pg_ctl start failed: see $PG_DIR/server.log" >&2; return 1; }
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  PG_BASE_URL="postgres://postgres@127.0.0.1:$PG_PORT"
  if [ "$PG_STATEMENTS" = 1 ]; then pg_psql postgres -c 'create extension if not exists pg_stat_statements'; fi
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
    pg_as "$(pg_tool pg_ctl)" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    if kill -0 "$PG_PID" 2>/dev/null; then
      kill -KILL "$PG_PID" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""; PG_PID=""
}

pg_psql() { # database, psql arguments…
  local db=$1; shift
  PGCONNECT_TIMEOUT=10 PGOPTIONS="-c client_min_messages=warning" "$(pg_tool psql)" -X -q -v ON_ERROR_STOP=1 -At "$PG_BASE_URL/$db?sslmode=disable" "$@"
}

pg_createdb() { # name: echoes the database's URL
  pg_psql postgres -c "drop database if exists $1 with (force)" -c "create database $1" >/dev/null || return 1
  echo "$PG_BASE_URL/$1?sslmode=disable"
}

pg_dropdb() { # name
  pg_psql postgres -c "drop database if exists $1 with (force)" >/dev/null
}

pg_settings() {
  pg_psql postgres -F ' ' -c "select 'PostgreSQL ' || current_setting('server_version') || ': ' ||
    string_agg(name || '=' || current_setting(name), ' ' order by name) from pg_settings
    where name in ('shared_buffers', 'max_connections', 'synchronous_commit', 'fsync', 'wal_sync_method',
      'commit_delay', 'max_wal_size', 'checkpoint_timeout', 'work_mem')"
}

pg_stats_reset() {
  pg_psql postgres -c "select pg_stat_reset_shared('wal')" >/dev/null
  if [ "$PG_STATEMENTS" = 1 ]; then pg_psql postgres -c 'select pg_stat_statements_reset()' >/dev/null; fi
}

pg_counters() { # database
  pg_psql postgres -F ' ' -c "select d.xact_commit, d.xact_rollback,
    w.wal_sync, w.wal_records, w.wal_bytes from pg_stat_database d, pg_stat_wal w where d.datname = '$1'"
}

pg_statements() { # database
  [ "$PG_STATEMENTS" = 1 ] || return 0
  pg_psql postgres -F ' | ' -P footer=off -c "select calls, round(total_exec_time) as total_ms,
    round((total_exec_time / calls)::numeric, 3) as mean_ms, rows,
    regexp_replace(left(query, 160), '\s+', ' ', 'g') as query
    from pg_stat_statements s join pg_database d on d.oid = s.dbid
    where d.datname = '$1' order by total_exec_time desc limit 30"
}

# A throwaway PostgreSQL cluster for the benchmarks, sourced by run.sh here and by
# bench/nodes/run.sh (bash). It never touches a cluster it did not start.
#
#   pg_start            initdb into a new temporary directory, start the server on a free
#                       loopback port; sets PG_PORT, PG_PID (the postmaster), PG_DIR
#   pg_stop             stop it (pg_ctl, then its PID) and delete the directory
#   pg_createdb NAME    a fresh, empty database; echoes its URL
#   pg_dropdb NAME
#   pg_settings         one line: the server's version and the settings that bear on commits
#
# Knobs: PG_BIN [newest /usr/lib/postgresql/*/bin, else PATH], PG_PORT_FROM [25432] (the
# first port tried), PG_MAX_CONNECTIONS [200]. Settings are PostgreSQL's defaults except
# listen_addresses = 127.0.0.1 (no Unix socket but one in PG_DIR) and max_connections.
# PG_EXTERNAL = postgres://user@host:port uses a server you run instead (pg_start then only
# checks that it answers; PG_PID stays empty, so no PostgreSQL CPU figures).
# As root, the server runs as the postgres OS user (PostgreSQL refuses to run as root).

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
PG_PORT_FROM=${PG_PORT_FROM:-25432}
PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}
PG_EXTERNAL=${PG_EXTERNAL:-}
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
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=$PG_MAX_CONNECTIONS" start >/dev/null \
    || { echo "pg_ctl start failed: see $PG_DIR/server.log" >&2; return 1; }
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  PG_BASE_URL="postgres://postgres@127.0.0.1:$PG_PORT"
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

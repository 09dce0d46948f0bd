#!/usr/bin/env bash
# Runs asyncqueue (built from this repository) and two "build it yourself" peers — River and
# goqite on SQLite — side by side, each on a fresh database, and prints a Markdown table of
# medians. See README.md in this directory.
#
# Everything listens on 127.0.0.1 only; every process this script starts is stopped by its
# own PID; every wait is bounded.
#
# Knobs (environment, defaults in brackets):
#   SCENARIOS ["imm slow delayshort rate hang"]
#   SYSTEMS   [per scenario: imm, delayshort, rate: "asyncqueue goqite-tuned river-tuned-full";
#              slow, hang: "asyncqueue goqite-tuned river-tuned-full goqite-wide river-wide"]
#   REPS [3]  C [32] concurrent creates
#   N [20000] immediate tasks (imm)
#   SN [5000] tasks whose target answers after SLOW_MS [1000] ms (slow)
#   DN [2000] tasks delayed DELAY_SHORT [1] s (delayshort)
#   RN [2000] tasks at RATE [200] tasks/s (rate)
#   HANG_N [1000] tasks to a target that never answers, timeout HANG_TIMEOUT [10] s, then
#   HN [200] tasks of another team to a healthy target (hang)
#   WORKERS [100] calls in flight of the "tuned"/"default" peers; WIDE [2000] of the "wide" ones
#   WARMUP [6] seconds a fresh server idles after 50 warm-up tasks
#   TLS [0]   1 = the targets are https (self-signed; trusted through SSL_CERT_FILE);
#             h1 = the same, but the target speaks only HTTP/1.1 (one call per connection at a time)
#   AQ_BIN    an asyncqueue binary to use instead of building the repository's
#   AQ_ARGS   extra flags for asyncqueue serve
#   VAULT_KEY [random] the --vault-key of asyncqueue-pg (64 hex characters)
#   PG_BIN, PG_PORT_FROM, PG_EXTERNAL: the PostgreSQL of asyncqueue-pg, river-pg and
#             river-pg-wide (see pgcluster.sh); by
#             default a throwaway cluster this script starts, each run on a fresh database
#   BIN [$TMPDIR/aq-peers-bin]  DBDIR [$TMPDIR/aq-peers-db]  OUT [$TMPDIR/aq-peers-results/<UTC time>]
#   SRV_PORT [18090] SINK_PORT [19000] SINK_TLS_PORT [19443]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TMP=${TMPDIR:-/tmp}

SCENARIOS=${SCENARIOS:-"imm slow delayshort rate hang"}
SYSTEMS=${SYSTEMS:-}
REPS=${REPS:-3}; C=${C:-32}
N=${N:-20000}; SN=${SN:-5000}; SLOW_MS=${SLOW_MS:-1000}
DN=${DN:-2000}; DELAY_SHORT=${DELAY_SHORT:-1}; RN=${RN:-2000}; RATE=${RATE:-200}
HANG_N=${HANG_N:-1000}; HANG_TIMEOUT=${HANG_TIMEOUT:-10}; HN=${HN:-200}
WORKERS=${WORKERS:-100}; WIDE=${WIDE:-2000}; WARMUP=${WARMUP:-6}; TLS=${TLS:-0}
AQ_BIN=${AQ_BIN:-}; AQ_ARGS=${AQ_ARGS:-}
VAULT_KEY=${VAULT_KEY:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}
BIN=${BIN:-$TMP/aq-peers-bin}; DBDIR=${DBDIR:-$TMP/aq-peers-db}
OUT=${OUT:-$TMP/aq-peers-results/$(date -u +%Y%m%dT%H%M%SZ)}
SRV_PORT=${SRV_PORT:-18090}; SINK_PORT=${SINK_PORT:-19000}; SINK_TLS_PORT=${SINK_TLS_PORT:-19443}
SRV=127.0.0.1:$SRV_PORT; SINK=127.0.0.1:$SINK_PORT
mkdir -p "$BIN" "$DBDIR" "$OUT"

echo "building into $BIN …" >&2
(cd "$HERE" && go build -o "$BIN/" ./cmd/...)
if [ -z "$AQ_BIN" ]; then
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN/asyncqueue" .)
  AQ_BIN=$BIN/asyncqueue
fi
GOQITE_SCHEMA=$(cd "$HERE" && go list -m -f '{{.Dir}}' maragu.dev/goqite)/schema_sqlite.sql

# PIDs this script started and has not reaped yet.
SINK_PID=""; SRV_PID=""; PG_DB=""
. "$HERE/pgcluster.sh"
stop_pid() { # pid: SIGTERM, up to 10 s, then SIGKILL
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  if [ -n "$SRV_PID" ]; then stop_pid "$SRV_PID"; fi
  if [ -n "$SINK_PID" ]; then stop_pid "$SINK_PID"; fi
  pg_stop
}
trap cleanup EXIT
trap "exit 130" INT TERM # so that the EXIT trap stops what this script started

wait_healthy() { # url pid: up to 20 s
  for _ in $(seq 1 400); do
    kill -0 "$2" 2>/dev/null || { echo "process $2 exited before $1 answered" >&2; return 1; }
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2; return 1
}

default_systems() { # scenario
  case "$1" in
    slow|hang) echo "asyncqueue goqite-tuned river-tuned-full goqite-wide river-wide" ;;
    *) echo "asyncqueue goqite-tuned river-tuned-full" ;;
  esac
}

server_cmd() { # system
  local r="$BIN/peer-river -addr $SRV -db $DBDIR/river.db"
  local g="$BIN/peer-goqite -addr $SRV -db $DBDIR/goqite.db -schema $GOQITE_SCHEMA"
  local aq="$AQ_BIN serve --db $AQ_DB --addr $SRV --allow-targets 127.0.0.1/32 --signal-rate-limit 0 --log-format json"
  case "$1" in
    asyncqueue)        echo "$aq $AQ_ARGS" ;;
    asyncqueue-normal) echo "$aq --sync normal $AQ_ARGS" ;;
    asyncqueue-pg)     echo "$aq --vault-key $VAULT_KEY --node-id n1 $AQ_ARGS" ;;
    river-default)     echo "$r -workers $WORKERS" ;;
    river-tuned)       echo "$r -workers $WORKERS -fetch-cooldown 10ms -fetch-poll 100ms" ;;
    river-tuned-full)  echo "$r -workers $WORKERS -fetch-cooldown 10ms -fetch-poll 100ms -sync FULL" ;;
    river-wide)        echo "$r -workers $WIDE -fetch-cooldown 10ms -fetch-poll 100ms -sync FULL" ;;
    river-pg)          echo "$BIN/peer-river -addr $SRV -pg $AQ_DB -pg-conns 16 -workers $WORKERS -fetch-cooldown 10ms -fetch-poll 100ms" ;;
    river-pg-wide)     echo "$BIN/peer-river -addr $SRV -pg $AQ_DB -pg-conns 16 -workers $WIDE -fetch-cooldown 10ms -fetch-poll 100ms" ;;
    goqite-default)    echo "$g -limit $WORKERS" ;;
    goqite-tuned)      echo "$g -limit $WORKERS -poll 10ms" ;;
    goqite-tuned-full) echo "$g -limit $WORKERS -poll 10ms -sync FULL" ;;
    goqite-wide)       echo "$g -limit $WIDE -poll 10ms" ;;
    *) echo "unknown system: $1" >&2; return 1 ;;
  esac
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "asyncqueue: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown) ($AQ_BIN)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "params: REPS=$REPS C=$C N=$N SN=$SN SLOW_MS=$SLOW_MS DN=$DN DELAY_SHORT=$DELAY_SHORT RN=$RN RATE=$RATE HANG_N=$HANG_N HANG_TIMEOUT=$HANG_TIMEOUT HN=$HN WORKERS=$WORKERS WIDE=$WIDE WARMUP=$WARMUP TLS=$TLS AQ_ARGS=$AQ_ARGS"
} > "$OUT/meta.txt"
# asyncqueue-pg and river-pg* need a PostgreSQL: started once, a fresh database per run.
all_systems=$SYSTEMS
if [ -z "$all_systems" ]; then for sc in $SCENARIOS; do all_systems="$all_systems $(default_systems "$sc")"; done; fi
if [[ " $all_systems " == *" asyncqueue-pg "* || " $all_systems " == *" river-pg"* ]]; then
  pg_start
  pg_settings >> "$OUT/meta.txt"
fi
cat "$OUT/meta.txt"

TARGET="http://$SINK"
if [ "$TLS" = 1 ] || [ "$TLS" = h1 ]; then
  export SSL_CERT_FILE="$DBDIR/sink-cert.pem"
  H1=(); [ "$TLS" = h1 ] && H1=(-tls-http1)
  "$BIN/sink" -addr "$SINK" -tls-addr "127.0.0.1:$SINK_TLS_PORT" -cert-out "$SSL_CERT_FILE" "${H1[@]}" > "$OUT/sink.log" 2>&1 &
  SINK_PID=$!
  TARGET="https://127.0.0.1:$SINK_TLS_PORT"
else
  "$BIN/sink" -addr "$SINK" > "$OUT/sink.log" 2>&1 &
  SINK_PID=$!
fi
wait_healthy "http://$SINK/healthz" "$SINK_PID"

for rep in $(seq 1 "$REPS"); do
  for sc in $SCENARIOS; do
    systems=${SYSTEMS:-$(default_systems "$sc")}
    # Reverse the order on even repetitions to spread the machine's drift.
    if [ $((rep % 2)) = 0 ]; then systems=$(echo "$systems" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for sys in $systems; do
      log="$OUT/$sys-$sc-r$rep.server.log"
      rm -f "$DBDIR"/aq.db* "$DBDIR"/river.db* "$DBDIR"/goqite.db*
      AQ_DB=$DBDIR/aq.db; DB_PID=""
      if [ "$sys" = asyncqueue-pg ] || [[ $sys == river-pg* ]]; then
        PG_DB=$(echo "${sys}_${sc}_r${rep}_$$" | tr - _)
        AQ_DB=$(pg_createdb "$PG_DB"); DB_PID=$PG_PID
      fi
      cmd=$(server_cmd "$sys")
      (set -f; exec $cmd) > "$log" 2>&1 & # set -f: a URL's ? is no pattern
      SRV_PID=$!
      wait_healthy "http://$SRV/healthz" "$SRV_PID"
      KEY=dev-key; KEY_B=dev-key
      if [[ $sys == asyncqueue* ]]; then
        KEY=""
        for _ in $(seq 1 100); do
          KEY=$(grep -oE 'async_[0-9A-Za-z]{49}' "$log" | head -1 || true)
          [ -n "$KEY" ] && break
          sleep 0.05
        done
        [ -n "$KEY" ] || { echo "no API key in $log" >&2; exit 1; }
        KEY_B=$KEY
        if [ "$sc" = hang ]; then # team B: another team on the same server
          KEY_B=$("$AQ_BIN" --db "$AQ_DB" teams create other-team 2>/dev/null | grep -oE 'async_[0-9A-Za-z]{49}' | head -1)
        fi
      fi
      "$BIN/loadgen" -base "http://$SRV" -key "$KEY" -sink "http://$SINK" -target "$TARGET" \
        -n 50 -c 4 -wait 20s -stall 10s -grace 0s -run "warm-$sys-$sc-$rep" > /dev/null 2>&1 || echo "warm-up failed: $sys $sc rep $rep" >&2
      sleep "$WARMUP"
      case "$sc" in
        imm)        args=(-n "$N") ;;
        slow)       args=(-n "$SN" -sleep-ms "$SLOW_MS") ;;
        delayshort) args=(-n "$DN" -delay "$DELAY_SHORT") ;;
        rate)       args=(-n "$RN" -rate "$RATE") ;;
        # The healthy tasks may wait for many rounds of hanging calls: no stall rule, only the wait.
        hang)       args=(-n "$HN" -hang-n "$HANG_N" -hang-timeout "$HANG_TIMEOUT" -key-b "$KEY_B" -stall 100s) ;;
        *) echo "unknown scenario: $sc" >&2; exit 1 ;;
      esac
      echo "=== rep $rep  $sc  $sys" >&2
      "$BIN/loadgen" -base "http://$SRV" -key "$KEY" -sink "http://$SINK" -target "$TARGET" -c "$C" \
        -wait 100s -stall 30s "${args[@]}" -pid "$SRV_PID" -sink-pid "$SINK_PID" ${DB_PID:+-db-pid "$DB_PID"} -run "$sys-$sc-$rep-$$" \
        -system "$sys" -scenario "$sc" -rep "$rep" -out "$OUT/$sys-$sc-r$rep.json" > "$OUT/$sys-$sc-r$rep.loadgen.log" 2>&1 \
        || echo "loadgen exit $? ($sys $sc rep $rep): see $OUT/$sys-$sc-r$rep.loadgen.log" >&2
      stop_pid "$SRV_PID"; SRV_PID=""
      if [ -n "$PG_DB" ]; then pg_dropdb "$PG_DB" || true; PG_DB=""; fi
      curl -sf -X DELETE "http://$SINK/runs/$sys-$sc-$rep-$$" >/dev/null 2>&1 || true
      curl -sf -X DELETE "http://$SINK/runs/$sys-$sc-$rep-$$-hang" >/dev/null 2>&1 || true
      curl -sf -X DELETE "http://$SINK/runs/warm-$sys-$sc-$rep" >/dev/null 2>&1 || true
      sleep 1
    done
  done
done

"$BIN/summarize" "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
echo "results: $OUT" >&2

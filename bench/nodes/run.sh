#!/usr/bin/env bash
# Runs 1, 2, 3… asyncqueue nodes on one PostgreSQL and measures them together with the
# bench/peers harness (its loadgen spreads the creates round-robin over the nodes, its sink
# counts the calls whatever node makes them). Starts its own throwaway PostgreSQL cluster
# (bench/peers/pgcluster.sh), a fresh database per run. See README.md in this directory.
#
# Everything listens on 127.0.0.1 only; every process this script starts is stopped by its
# own PID (PostgreSQL by pg_ctl, then its PID); every wait is bounded.
#
# Knobs (environment, defaults in brackets):
#   NODES_LIST ["1 2 3"]  node counts to run on PostgreSQL (empty: none)
#   SCENARIOS ["imm slow delayshort rate"]  (the bench/peers scenarios but hang)
#   BASELINE [0]  1 = also one node on SQLite (system "sqlite-1-node") in every scenario
#   REPS [1]  C [32] concurrent creates
#   N [10000] immediate tasks (imm)
#   SN [3000] tasks whose target answers after SLOW_MS [1000] ms (slow)
#   DN [2000] tasks delayed DELAY_SHORT [1] s (delayshort)
#   RN [2000] tasks at RATE [200] tasks/s (rate)
#   WARMUP [6] seconds the fresh nodes idle after 50 warm-up tasks
#   AQ_BIN    an asyncqueue binary to use instead of building the repository's
#   AQ_ARGS   extra flags for every node's asyncqueue serve
#   VAULT_KEY [random] the nodes' --vault-key (64 hex characters)
#   PG_BIN, PG_PORT_FROM [25432], PG_MAX_CONNECTIONS [200], PG_EXTERNAL: see bench/peers/pgcluster.sh
#   PG_STATEMENTS [0]  1 = load pg_stat_statements and write each run's statements (a diagnosis:
#             it costs PostgreSQL a little, so not for the figures)
#   BIN [$TMPDIR/aq-nodes-bin]  DBDIR [$TMPDIR/aq-nodes-db]  OUT [$TMPDIR/aq-nodes-results/<UTC time>]
#   SRV_PORT [18190] (node i listens on SRV_PORT + i − 1)  SINK_PORT [19100]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS=$ROOT/bench/peers
TMP=${TMPDIR:-/tmp}

NODES_LIST=${NODES_LIST-"1 2 3"}
SCENARIOS=${SCENARIOS:-"imm slow delayshort rate"}
BASELINE=${BASELINE:-0}
REPS=${REPS:-1}; C=${C:-32}
N=${N:-10000}; SN=${SN:-3000}; SLOW_MS=${SLOW_MS:-1000}
DN=${DN:-2000}; DELAY_SHORT=${DELAY_SHORT:-1}; RN=${RN:-2000}; RATE=${RATE:-200}
WARMUP=${WARMUP:-6}
AQ_BIN=${AQ_BIN:-}; AQ_ARGS=${AQ_ARGS:-}
VAULT_KEY=${VAULT_KEY:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}
BIN=${BIN:-$TMP/aq-nodes-bin}; DBDIR=${DBDIR:-$TMP/aq-nodes-db}
OUT=${OUT:-$TMP/aq-nodes-results/$(date -u +%Y%m%dT%H%M%SZ)}
SRV_PORT=${SRV_PORT:-18190}; SINK_PORT=${SINK_PORT:-19100}
SINK=127.0.0.1:$SINK_PORT
mkdir -p "$BIN" "$DBDIR" "$OUT"

echo "building into $BIN …" >&2
(cd "$PEERS" && go build -o "$BIN/" ./cmd/loadgen ./cmd/sink ./cmd/summarize)
if [ -z "$AQ_BIN" ]; then
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN/asyncqueue" .)
  AQ_BIN=$BIN/asyncqueue
fi

. "$PEERS/pgcluster.sh"

# PIDs this script started and has not reaped yet.
SINK_PID=""; NODE_PIDS=(); PG_DB=""
stop_pids() { # pids…: SIGTERM to all, up to 10 s, then SIGKILL
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 100); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cleanup() {
  stop_pids "${NODE_PIDS[@]}"; NODE_PIDS=()
  if [ -n "$SINK_PID" ]; then stop_pids "$SINK_PID"; fi
  if [ -n "$PG_DB" ] && [ -n "$PG_EXTERNAL" ]; then pg_dropdb "$PG_DB" || true; fi
  pg_stop
}
trap cleanup EXIT
trap "exit 130" INT TERM # so that the EXIT trap stops what this script started

wait_healthy() { # url pid: up to 30 s
  for _ in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || { echo "process $2 exited before $1 answered" >&2; return 1; }
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2; return 1
}

pg_start
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "asyncqueue: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown) ($AQ_BIN)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "$(pg_settings)"
  echo "params: NODES_LIST=$NODES_LIST BASELINE=$BASELINE REPS=$REPS C=$C N=$N SN=$SN SLOW_MS=$SLOW_MS DN=$DN DELAY_SHORT=$DELAY_SHORT RN=$RN RATE=$RATE WARMUP=$WARMUP AQ_ARGS=$AQ_ARGS"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt"

"$BIN/sink" -addr "$SINK" > "$OUT/sink.log" 2>&1 &
SINK_PID=$!
wait_healthy "http://$SINK/healthz" "$SINK_PID"

systems=""
if [ "$BASELINE" = 1 ]; then systems="sqlite"; fi
for n in $NODES_LIST; do systems="$systems $n"; done

for rep in $(seq 1 "$REPS"); do
  for sc in $SCENARIOS; do
    # Reverse the order on even repetitions to spread the machine's drift.
    order=$systems
    if [ $((rep % 2)) = 0 ]; then order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for sys in $order; do
      if [ "$sys" = sqlite ]; then
        name=sqlite-1-node; nodes=1
        rm -f "$DBDIR"/aq.db*
        db=$DBDIR/aq.db; dbpid=""; extra=()
      else
        nodes=$sys; name=pg-$nodes-node; [ "$nodes" = 1 ] || name=$name"s"
        PG_DB=aq_nodes_${nodes}_${sc}_r${rep}_$$
        db=$(pg_createdb "$PG_DB"); dbpid=$PG_PID; extra=(--vault-key "$VAULT_KEY")
        pg_stats_reset
      fi
      bases=""; pids=""; KEY=""
      for i in $(seq 1 "$nodes"); do
        addr=127.0.0.1:$((SRV_PORT + i - 1))
        log="$OUT/$name-$sc-r$rep.n$i.log"
        # shellcheck disable=SC2086 # AQ_ARGS is a list of flags
        "$AQ_BIN" serve --db "$db" "${extra[@]}" --node-id "n$i" --addr "$addr" --allow-targets 127.0.0.1/32 \
          --signal-rate-limit 0 --log-format json $AQ_ARGS > "$log" 2>&1 &
        pid=$!; NODE_PIDS+=("$pid")
        wait_healthy "http://$addr/healthz" "$pid"
        if [ "$i" = 1 ]; then # the first node on an empty database prints the bootstrap key
          for _ in $(seq 1 100); do
            KEY=$(grep -oE 'async_[0-9A-Za-z]{49}' "$log" | head -1 || true)
            [ -n "$KEY" ] && break
            sleep 0.05
          done
          [ -n "$KEY" ] || { echo "no API key in $log" >&2; exit 1; }
        fi
        bases="$bases${bases:+,}http://$addr"; pids="$pids${pids:+,}$pid"
      done
      "$BIN/loadgen" -base "$bases" -key "$KEY" -sink "http://$SINK" -n 50 -c 4 -wait 20s -stall 10s -grace 0s \
        -run "warm-$name-$sc-$rep-$$" > /dev/null 2>&1 || echo "warm-up failed: $name $sc rep $rep" >&2
      sleep "$WARMUP"
      case "$sc" in
        imm)        args=(-n "$N") ;;
        slow)       args=(-n "$SN" -sleep-ms "$SLOW_MS") ;;
        delayshort) args=(-n "$DN" -delay "$DELAY_SHORT") ;;
        rate)       args=(-n "$RN" -rate "$RATE") ;;
        *) echo "unknown scenario: $sc" >&2; exit 1 ;;
      esac
      echo "=== rep $rep  $sc  $name" >&2
      "$BIN/loadgen" -base "$bases" -key "$KEY" -sink "http://$SINK" -c "$C" -wait 100s -stall 30s "${args[@]}" \
        -pid "$pids" -sink-pid "$SINK_PID" ${dbpid:+-db-pid "$dbpid"} -run "$name-$sc-$rep-$$" \
        -system "$name" -scenario "$sc" -rep "$rep" -out "$OUT/$name-$sc-r$rep.json" > "$OUT/$name-$sc-r$rep.loadgen.log" 2>&1 \
        || echo "loadgen exit $? ($name $sc rep $rep): see $OUT/$name-$sc-r$rep.loadgen.log" >&2
      stop_pids "${NODE_PIDS[@]}"; NODE_PIDS=()
      if [ -n "$PG_DB" ]; then
        # What the database did for the run, start-up and warm-up included (its backends have
        # ended, so they have reported their counts).
        sleep 0.5
        echo "$name $sc $rep $((${args[1]} + 50)) $(pg_counters "$PG_DB")" >> "$OUT/pgstats.txt"
        pg_statements "$PG_DB" > "$OUT/$name-$sc-r$rep.statements.txt"
        [ -s "$OUT/$name-$sc-r$rep.statements.txt" ] || rm -f "$OUT/$name-$sc-r$rep.statements.txt"
        pg_dropdb "$PG_DB" || true; PG_DB=""
      fi
      curl -sf -X DELETE "http://$SINK/runs/$name-$sc-$rep-$$" >/dev/null 2>&1 || true
      curl -sf -X DELETE "http://$SINK/runs/warm-$name-$sc-$rep-$$" >/dev/null 2>&1 || true
      sleep 1
    done
  done
done

"$BIN/summarize" "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
echo "results: $OUT" >&2

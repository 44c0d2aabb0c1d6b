#!/usr/bin/env bash
# Side-by-side load runs: ssehub, nginx + nchan (the C reference) and the axum broadcast
# example, each scenario RUNS times (default 3), every run bounded (seconds) and on
# loopback only. Prints one JSON report per line to $OUT (default /tmp/ssehub-bench-<stamp>.jsonl) and a
# table of medians (scripts/bench_table.py).
#
#   cargo build --release -p ssehub --bin ssehub --example axum_broadcast -p ssehub-bench
#   apt-get install -y nginx libnginx-mod-nchan
#   scripts/bench.sh            # or RUNS=1 SERVERS="ssehub" scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SERVERS=${SERVERS:-"ssehub nchan axum"}
SCENARIOS=${SCENARIOS:-"idle fanout100 fanout1000 topics1000"}
IDLE=${IDLE:-19000}
BIN=${BIN:-target/release/ssehub}
BENCH=${BENCH:-target/release/ssehub-bench}
AXUM=target/release/examples/axum_broadcast
NCHAN_CONF=${NCHAN_CONF:-/work/shared/bench/nchan/nginx.conf}
OUT=${OUT:-${TMPDIR:-/tmp}/ssehub-bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"
SERVER_PID=""

start() { # $1 = server; sets ADDR, TARGET, PIDS
  case $1 in
    ssehub|ssehub-base)
      # ssehub-base: an earlier build ($BASE_BIN) in the same run, for before/after figures.
      local dir bin=$BIN; dir=$(mktemp -d /tmp/ssehub-bench.XXXXXX)
      [ "$1" = ssehub-base ] && bin=${BASE_BIN:?set BASE_BIN to the earlier ssehub binary}
      "$bin" serve --listen 127.0.0.1:18080 --data-dir "$dir" --anonymous \
        --publisher-jwt-key '!ChangeMe!' --max-connections 19900 >"$dir.log" 2>&1 &
      SERVER_PID=$!; PIDS=("--server-pid" "$SERVER_PID"); ADDR=127.0.0.1:18080; TARGET=ssehub ;;
    axum)
      "$AXUM" 127.0.0.1:18082 >/tmp/axum-bench.log 2>&1 &
      SERVER_PID=$!; PIDS=("--server-pid" "$SERVER_PID"); ADDR=127.0.0.1:18082; TARGET=axum ;;
    nchan)
      rm -rf /tmp/nchan-ref && mkdir -p /tmp/nchan-ref/tmp
      nginx -p /tmp/nchan-ref/ -c "$NCHAN_CONF" 2>/dev/null
      sleep 0.5
      SERVER_PID=$(cat /tmp/nchan-ref/nginx.pid)
      PIDS=("--server-pid" "$SERVER_PID")
      for w in $(pgrep -P "$SERVER_PID"); do PIDS+=("--server-pid" "$w"); done
      ADDR=127.0.0.1:18081; TARGET=nchan ;;
  esac
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/${ADDR%:*}/${ADDR#*:}) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server $1 did not come up" >&2; return 1
}

stop() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  sleep 0.5
}

scenario_args() {
  case $1 in
    idle)       echo "--scenario idle --subscribers $IDLE --duration 3s" ;;
    fanout100)  echo "--scenario fanout --subscribers 100 --rate 1000 --duration 10s" ;;
    fanout1000) echo "--scenario fanout --subscribers 1000 --rate 0 --duration 10s" ;;
    topics1000) echo "--scenario topics --subscribers 1000 --topics 1000 --rate 1000 --duration 5s" ;;
  esac
}

trap 'stop' EXIT
for run in $(seq "$RUNS"); do
  for server in $SERVERS; do
    for sc in $SCENARIOS; do
      # A fresh server per scenario: memory and history start from zero.
      start "$server"
      load=$(cut -d' ' -f1 /proc/loadavg)
      # shellcheck disable=SC2046
      json=$("$BENCH" --target "$TARGET" --addr "$ADDR" "${PIDS[@]}" --json $(scenario_args "$sc") || true)
      echo "{\"run\":$run,\"server\":\"$server\",\"case\":\"$sc\",\"load\":$load,\"report\":${json:-null}}" | tee -a "$OUT"
      stop
    done
  done
done
python3 scripts/bench_table.py "$OUT"

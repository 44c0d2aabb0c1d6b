#!/usr/bin/env bash
# Side-by-side load runs: ssehub, nginx + nchan (the C reference) and the axum broadcast
# example, each scenario RUNS times (default 3), every run bounded (seconds) and on
# loopback only. Prints one JSON report per line to $OUT (default /tmp/ssehub-bench-<stamp>.jsonl) and a
# table of medians (scripts/bench_table.py), and SVG charts of the same (scripts/bench_charts.py,
# into $CHARTS, default beside $OUT).
#
#   cargo build --release -p ssehub --bin ssehub --example axum_broadcast -p ssehub-bench
#   apt-get install -y nginx libnginx-mod-nchan
#   scripts/bench.sh            # or RUNS=1 SERVERS="ssehub" scripts/bench.sh
#
# Several nodes on one Redis (redis-server with appendonly yes, appendfsync always, so a publish
# is as durable as the embedded store's): ssehub-redis is one node on it, ssehub-cluster two.
# In the cluster, fanout1000 spreads subscribers and publishers over both nodes, and fanout100
# subscribes on one node and publishes on the other, so every delivery crosses nodes:
#   SERVERS="ssehub ssehub-redis ssehub-cluster" SCENARIOS="fanout100 fanout1000" scripts/bench.sh
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
# Where the stores keep their data (and where `fsync us` is measured). DATA_ROOT=/dev/shm puts
# them in memory, where a sync costs nothing: the difference to a run on disk is the disk's share.
DATA_ROOT=${DATA_ROOT:-/tmp}
mkdir -p "$(dirname "$OUT")"
STARTED=()       # every process this script started, stopped by pid
NODE2=127.0.0.1:18083
REDIS_PORT=16379

wait_port() { # $1 = host:port
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

node() { # $1 = listen address, $2 = data dir; the node's pid is appended to STARTED
  "$BIN" serve --listen "$1" --data-dir "$2" --anonymous --publisher-jwt-key '!ChangeMe!' \
    --max-connections 19900 --store "redis://127.0.0.1:$REDIS_PORT/0" >"$2.log" 2>&1 &
  STARTED+=($!); PIDS+=("--server-pid" "$!")
}

start() { # $1 = server; sets ADDR, TARGET, PIDS
  case $1 in
    ssehub-redis|ssehub-cluster)
      local dir; dir=$(mktemp -d "$DATA_ROOT/ssehub-bench.XXXXXX")
      redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
        --appendfsync always --dir "$dir" --logfile "$dir/redis.log" --daemonize no \
        --protected-mode no >/dev/null 2>&1 &
      STARTED+=($!); local redis=$!
      wait_port "127.0.0.1:$REDIS_PORT"
      PIDS=("--redis-pid" "$redis")
      node 127.0.0.1:18080 "$dir/a"
      [ "$1" = ssehub-cluster ] && { node "$NODE2" "$dir/b"; wait_port "$NODE2"; }
      ADDR=127.0.0.1:18080; TARGET=ssehub ;;
    ssehub|ssehub-base)
      # ssehub-base: an earlier build ($BASE_BIN) in the same run, for before/after figures.
      local dir bin=$BIN; dir=$(mktemp -d "$DATA_ROOT/ssehub-bench.XXXXXX")
      [ "$1" = ssehub-base ] && bin=${BASE_BIN:?set BASE_BIN to the earlier ssehub binary}
      "$bin" serve --listen 127.0.0.1:18080 --data-dir "$dir" --anonymous \
        --publisher-jwt-key '!ChangeMe!' --max-connections 19900 >"$dir.log" 2>&1 &
      STARTED+=($!); PIDS=("--server-pid" "$!"); ADDR=127.0.0.1:18080; TARGET=ssehub ;;
    axum)
      "$AXUM" 127.0.0.1:18082 >/tmp/axum-bench.log 2>&1 &
      STARTED+=($!); PIDS=("--server-pid" "$!"); ADDR=127.0.0.1:18082; TARGET=axum ;;
    nchan)
      rm -rf /tmp/nchan-ref && mkdir -p /tmp/nchan-ref/tmp
      nginx -p /tmp/nchan-ref/ -c "$NCHAN_CONF" 2>/dev/null
      sleep 0.5
      local master; master=$(cat /tmp/nchan-ref/nginx.pid)
      STARTED+=("$master"); PIDS=("--server-pid" "$master")
      for w in $(pgrep -P "$master"); do PIDS+=("--server-pid" "$w"); done
      ADDR=127.0.0.1:18081; TARGET=nchan ;;
  esac
  wait_port "$ADDR"
}

stop() {
  local pid
  # Nodes before the Redis they use: the newest first.
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    pid=${STARTED[i]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STARTED=()
  sleep 0.5
}

sync_us() { # microseconds per synced 4 KiB write in $DATA_ROOT, where the stores write: on a
  # shared disk this moves with other load and bounds every durable acknowledgement
  local f secs; f=$(mktemp "$DATA_ROOT/ssehub-bench-sync.XXXXXX")
  secs=$(dd if=/dev/zero of="$f" bs=4k count=50 oflag=dsync 2>&1 | awk '/copied/ {print $(NF-3)}')
  rm -f "$f"
  awk -v s="$secs" 'BEGIN { printf "%d", s * 1e6 / 50 }'
}

addr_args() { # $1 = server, $2 = scenario
  if [ "$1" != ssehub-cluster ]; then echo "--addr $ADDR"; return; fi
  case $2 in
    fanout100) echo "--addr $NODE2 --publish-addr $ADDR" ;;  # every delivery crosses nodes
    *)         echo "--addr $ADDR --addr $NODE2" ;;           # both nodes take both
  esac
}

scenario_args() {
  case $1 in
    idle)       echo "--scenario idle --subscribers $IDLE --duration 3s" ;;
    fanout100)  echo "--scenario fanout --subscribers 100 --rate 1000 --duration 10s" ;;
    fanout1000) echo "--scenario fanout --subscribers 1000 --rate 0 --duration 10s" ;;
    topics1000) echo "--scenario topics --subscribers 1000 --topics 1000 --rate 1000 --duration 5s" ;;
    publishmax) echo "--scenario fanout --subscribers 1 --rate 0 --publishers 32 --duration 10s" ;;
  esac
}

# One load run at a time on a shared machine: others' runs would be measured too.
exec 9>"${TMPDIR:-/tmp}/ssehub-bench.lock"
flock 9
trap 'stop' EXIT
for run in $(seq "$RUNS"); do
  for server in $SERVERS; do
    for sc in $SCENARIOS; do
      # A fresh server per scenario: memory and history start from zero.
      start "$server"
      load=$(cut -d' ' -f1 /proc/loadavg)
      sync=$(sync_us)
      # shellcheck disable=SC2046
      json=$("$BENCH" --target "$TARGET" $(addr_args "$server" "$sc") "${PIDS[@]}" --json $(scenario_args "$sc") || true)
      echo "{\"run\":$run,\"server\":\"$server\",\"case\":\"$sc\",\"load\":$load,\"sync_us\":$sync,\"report\":${json:-null}}" | tee -a "$OUT"
      stop
    done
  done
done
python3 scripts/bench_table.py "$OUT"
# The same medians as SVG charts, one per scenario (BENCHMARKS.md links docs/bench/: run with
# CHARTS=docs/bench to refresh those).
python3 scripts/bench_charts.py "$OUT" "${CHARTS:-${OUT%.jsonl}-charts}"

#!/usr/bin/env bash
# Durable Streams side by side: ssehub (embedded store, every append fsynced before it is
# acknowledged) against the Node reference server @durable-streams/server (pinned in
# bench/durable-streams/package-lock.json), in memory and file-backed (fdatasync per append).
# Each case RUNS times (default 3), servers interleaved within a run so they share the
# machine's load; a fresh server and data directory per case; loopback only, every run
# bounded. One JSON report per line to $OUT, then a table of medians.
#
#   cargo build --release -p ssehub --bin ssehub -p ssehub-bench
#   scripts/bench-durable-streams.sh            # or RUNS=1 CASES="append1 sse1" SERVERS=ssehub …
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SERVERS=${SERVERS:-"ssehub node-memory node-file"}
CASES=${CASES:-"append1 append16 append256 sse1 sse1000 catchup"}
BIN=${BIN:-target/release/ssehub}
BENCH=${BENCH:-target/release/ssehub-bench}
CATCHUP_BYTES=${CATCHUP_BYTES:-100000000}
OUT=${OUT:-${TMPDIR:-/tmp}/ssehub-ds-bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
REF=bench/durable-streams
PORT=18090
STARTED=()   # pids this script started, stopped by pid
DIRS=()

if [ ! -d "$REF/node_modules/@durable-streams/server" ] \
  || [ "$REF/package-lock.json" -nt "$REF/node_modules/.package-lock.json" ]; then
  (cd "$REF" && npm ci --no-audit --no-fund --loglevel=error)
fi
for f in "$BIN" "$BENCH"; do
  [ -x "$f" ] || { echo "$f missing: cargo build --release -p ssehub --bin ssehub -p ssehub-bench" >&2; exit 1; }
done

wait_port() { # $1 = port
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

start() { # $1 = server; sets PID
  local dir; dir=$(mktemp -d /tmp/ssehub-ds-bench.XXXXXX); DIRS+=("$dir")
  case $1 in
    ssehub)
      "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir/data" --anonymous-streams \
        --publisher-jwt-key '!ChangeMe!' --max-connections 19900 >"$dir/log" 2>&1 & ;;
    node-memory)
      node "$REF/serve.mjs" "$PORT" >"$dir/log" 2>&1 & ;;
    node-file)
      node "$REF/serve.mjs" "$PORT" "$dir/data" >"$dir/log" 2>&1 & ;;
  esac
  PID=$!; STARTED+=("$PID")
  wait_port "$PORT"
}

stop() {
  local pid
  for pid in "${STARTED[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STARTED=()
  for d in "${DIRS[@]}"; do rm -rf "$d"; done
  DIRS=()
}

sync_us() { # microseconds per synced 4 KiB write in /tmp (where the data directories are):
  # on a shared disk this moves with other load and bounds every durable acknowledgement
  local f secs; f=$(mktemp /tmp/ssehub-ds-bench-sync.XXXXXX)
  secs=$(dd if=/dev/zero of="$f" bs=4k count=50 oflag=dsync 2>&1 | awk '/copied/ {print $(NF-3)}')
  rm -f "$f"
  awk -v s="$secs" 'BEGIN { printf "%d", s * 1e6 / 50 }'
}

case_args() {
  case $1 in
    append1)   echo "--scenario ds-append --publishers 1 --duration 5s --payload 100" ;;
    append16)  echo "--scenario ds-append --publishers 16 --duration 5s --payload 100" ;;
    append256) echo "--scenario ds-append --publishers 256 --duration 5s --payload 100" ;;
    sse1)      echo "--scenario ds-sse --subscribers 1 --rate 100 --duration 5s --drain 2s --payload 100" ;;
    sse1000)   echo "--scenario ds-sse --subscribers 1000 --rate 100 --duration 5s --drain 3s --payload 100" ;;
    catchup)   echo "--scenario ds-catchup --subscribers 1 --stream-bytes $CATCHUP_BYTES" ;;
  esac
}

# One load run at a time on a shared machine (the lock scripts/bench.sh takes too).
exec 9>"${TMPDIR:-/tmp}/ssehub-bench.lock"
flock 9
trap 'stop' EXIT
for run in $(seq "$RUNS"); do
  for sc in $CASES; do
    for server in $SERVERS; do
      start "$server"
      load=$(cut -d' ' -f1 /proc/loadavg)
      sync=$(sync_us)
      # shellcheck disable=SC2046
      json=$("$BENCH" --addr "127.0.0.1:$PORT" --server-pid "$PID" --threads 1 $(case_args "$sc") || true)
      echo "{\"run\":$run,\"server\":\"$server\",\"case\":\"$sc\",\"load\":$load,\"sync_us\":$sync,\"report\":${json:-null}}" | tee -a "$OUT"
      stop
    done
  done
done
python3 scripts/bench_ds_table.py "$OUT"

#!/usr/bin/env bash
# The official Durable Streams server conformance suite (npm @durable-streams/server-conformance-tests,
# pinned in conformance/durable-streams/package-lock.json) against a real `ssehub serve`.
# Also runs relay-answer.test.mjs: a relay answer read with @durable-streams/client at
# /v1/stream/__relay/{id}. Installs what it needs on a fresh Debian machine (node, npm; the suite from the lock file),
# starts the hub on a free port with a fresh data directory and --anonymous-streams, runs the
# suite, stops the hub by its PID. Fails on any failure not listed, with its reason, in
# conformance/durable-streams/expected-failures.txt, and on a listed one that passes.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need_pkgs=()
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
apt_install "${need_pkgs[@]}"

suite=conformance/durable-streams
if [ ! -d "$suite/node_modules/@durable-streams/server-conformance-tests" ] \
  || [ "$suite/package-lock.json" -nt "$suite/node_modules/.package-lock.json" ]; then
  step "npm ci ($suite)"
  (cd "$suite" && npm ci --no-audit --no-fund --loglevel=error)
fi

step "cargo build -p ssehub"
cargo build -p ssehub --locked
bin="${CARGO_TARGET_DIR:-target}/debug/ssehub"

work=$(mktemp -d)
hub_pid=
cleanup() {
  if [ -n "$hub_pid" ] && kill -0 "$hub_pid" 2>/dev/null; then
    kill "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "starting ssehub (anonymous streams, fresh data directory)"
# Port 0: the hub picks a free port and logs it. The key only spares the first-run banner.
# A short long-poll timeout, as the reference server's own conformance run uses, keeps the
# suite's timeout tests short.
"$bin" serve --anonymous-streams --listen 127.0.0.1:0 --data-dir "$work/data" \
  --publisher-jwt-key "conformance-only-$RANDOM$RANDOM" \
  --streams-long-poll-timeout 500ms --log-format json >"$work/hub.log" 2>&1 &
hub_pid=$!
url=
for _ in $(seq 1 200); do
  url=$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$work/hub.log" | head -n1 | sed 's/"addr":"\(.*\)"/http:\/\/\1/' || true)
  if [ -n "$url" ] && curl -fsS "$url/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$hub_pid" 2>/dev/null; then
    cat "$work/hub.log"; echo "ssehub exited before it was ready" >&2; exit 1
  fi
  url=
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$work/hub.log"; echo "ssehub did not become healthy" >&2; exit 1
fi
echo "hub at $url (pid $hub_pid)"

step "conformance suite"
mkdir -p "$suite/results"
report="$suite/results/report.json"
rm -f "$report"
status=0
(cd "$suite" && SSEHUB_STREAMS_URL="$url" npx --no-install vitest run \
  --reporter=default --reporter=json --outputFile.json=results/report.json) || status=$?
if [ ! -s "$report" ]; then
  tail -n 50 "$work/hub.log"
  echo "the suite produced no report (vitest exit $status)" >&2
  exit 1
fi
if ! node "$suite/check-results.mjs" "$report" "$suite/expected-failures.txt"; then
  echo "--- last hub log lines ---"; tail -n 30 "$work/hub.log"
  exit 1
fi

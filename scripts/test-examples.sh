#!/usr/bin/env bash
# The publishing examples in examples/ against a real hub: starts `target/debug/ssehub serve`
# on a free loopback port with a known publisher key, runs each example (Python with pinned
# `requests` in a venv under target/, Node's fetch, PHP's curl, the shell's curl), and checks
# that a subscriber received every update. Installs what it needs on a fresh Debian machine.
# The hub and the subscriber are stopped by PID. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need_pkgs=()
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v php >/dev/null 2>&1 || need_pkgs+=(php-cli)
command -v php >/dev/null 2>&1 && php -m 2>/dev/null | grep -qx curl || need_pkgs+=(php-curl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
apt_install "${need_pkgs[@]}"

venv=target/examples-venv
requests_version=2.34.2
if ! "$venv/bin/python" -c "import requests, sys; sys.exit(requests.__version__ != '$requests_version')" >/dev/null 2>&1; then
  step "installing requests $requests_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "requests==$requests_version"
fi

step "cargo build -p ssehub"
cargo build -p ssehub --locked
bin=target/debug/ssehub

work=$(mktemp -d)
hub_pid=
listen_pid=
cleanup() {
  [ -n "$listen_pid" ] && kill "$listen_pid" 2>/dev/null || true
  if [ -n "$hub_pid" ]; then
    kill -TERM "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

key=examples-test-secret-long-enough-for-hs256
step "starting the hub"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --publisher-jwt-key "$key" \
  >"$work/hub.out" 2>"$work/hub.log" &
hub_pid=$!
# Port 0: the kernel picks a free port; the hub logs which (bounded wait).
base=
for _ in $(seq 1 300); do
  base=$(sed -n 's/.*ssehub listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/hub.log" | head -n1)
  [ -n "$base" ] && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log"; echo "the hub exited"; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$work/hub.log"; echo "the hub never said where it listens"; exit 1; }
echo "hub at $base"

export HUB="$base/.well-known/mercure"
export TOKEN
TOKEN=$("$bin" token --key "$key" --publish '/examples/{+rest}')
topic=/examples/greetings
subscriber=$("$bin" token --key "$key" --subscribe "$topic")

# The subscriber: `ssehub listen` prints one JSON line per event.
"$bin" listen --json -H "Authorization: Bearer $subscriber" "$HUB?topic=$topic" >"$work/received" 2>"$work/listen.log" &
listen_pid=$!
# Subscribed once the hub counts it (bounded wait).
for _ in $(seq 1 100); do
  curl -fsS "$base/metrics" | grep -q '^ssehub_subscribers 1$' && break
  sleep 0.1
done

status=0
run() {
  local name=$1 data=$2
  shift 2
  if out=$("$@" "$topic" "$data" 2>&1) && [[ "$out" == urn:uuid:* ]]; then
    echo "ok   $name published ($out)"
  else
    echo "FAIL $name: $out"
    status=1
  fi
}
step "running the examples"
run python "hello from Python" "$venv/bin/python" examples/publish.py
run node "hello from Node" node examples/publish.mjs
run php "hello from PHP" php examples/publish.php
run curl "hello from curl" sh examples/publish.sh

# Every update reaches the subscriber (bounded wait), in the order published.
expected='hello from Python|hello from Node|hello from PHP|hello from curl'
got=
for _ in $(seq 1 100); do
  got=$(sed -n 's/.*"data":"\([^"]*\)".*/\1/p' "$work/received" | paste -sd '|')
  [ "$got" = "$expected" ] && break
  sleep 0.1
done
if [ "$got" = "$expected" ]; then
  echo "ok   the subscriber received all four, in order"
else
  echo "FAIL the subscriber received: ${got:-nothing}"
  cat "$work/listen.log"
  status=1
fi
exit "$status"

#!/usr/bin/env bash
# The browser side of ssehub: unit tests of web/ssehub.js under node, then the chat page, the
# console and the module in headless Chromium against the real `ssehub` binary. Installs what
# it needs on a fresh Debian machine (node, npm, chromium, openssl; playwright-core from the
# committed lock file), so CI needs no hand-installed tool. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need_pkgs=()
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_pkgs+=(chromium)
apt_install "${need_pkgs[@]}"

if [ ! -d web/node_modules/playwright-core ]; then
  step "npm ci (web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

step "cargo build -p ssehub"
cargo build -p ssehub --locked

step "web tests (node unit tests, then headless Chromium)"
mkdir -p web/test-results
log=web/test-results/node-test.tap
status=0
# One at a time: each browser test file starts its own hub and Chromium, and the machine is
# shared with other builds.
(cd web && node --test --test-concurrency=1 --test-reporter=tap tests/ browser-tests/) | tee "$log" || status=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n1)
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n1)
echo "web: ${pass:-0} passed, ${fail:-0} failed"
if [ "$status" -ne 0 ] || [ "${fail:-0}" -ne 0 ] || [ "${pass:-0}" -eq 0 ]; then
  exit 1
fi

#!/usr/bin/env bash
# Checks packaging/ssehub.service with systemd's own tools, offline (no systemd needs to run
# as PID 1): `systemd-analyze verify` (syntax, every key known, the binary executable, the
# Documentation= man page found among the pages `ssehub man` writes) and
# `systemd-analyze security --offline` (the hardening's exposure score, at most 2.0 of 10).
# The unit's keys are also checked by a Rust test (tests/hub/packaging.rs) where this cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! command -v systemd-analyze >/dev/null 2>&1; then
  # Debian's systemd package brings systemd-analyze; installing it does not start systemd.
  apt_install systemd
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "packaging: systemd-analyze is not available (installing Debian's systemd failed), so the unit is not verified here" >&2
  exit 1
fi

cargo build --quiet --locked -p ssehub --bin ssehub
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/ssehub"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/man/man1"
"$bin" man --out "$work/man/man1"
# The same unit, with ExecStart pointing at the binary just built instead of /usr/local/bin.
sed "s#/usr/local/bin/ssehub#$bin#g" packaging/ssehub.service >"$work/ssehub.service"

cd "$work"
# verify exits 0 on an unknown or misspelt key (it only warns), so any output is a failure.
if ! MANPATH="$work/man" systemd-analyze verify ssehub.service >verify.txt 2>&1 || [ -s verify.txt ]; then
  cat verify.txt >&2
  echo "packaging: systemd-analyze verify found problems in packaging/ssehub.service" >&2
  exit 1
fi
echo "packaging: systemd-analyze verify ssehub.service: ok ($(systemd-analyze --version | head -1))"

if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
  systemd-analyze security --offline=true --threshold=20 ssehub.service >security.txt 2>&1 || {
    cat security.txt >&2
    echo "packaging: the unit's exposure is above 2.0" >&2
    exit 1
  }
  echo "packaging: $(grep 'Overall exposure' security.txt)"
else
  echo "packaging: this systemd-analyze has no 'security --offline' (systemd < 250); exposure not scored"
fi

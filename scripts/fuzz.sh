#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, one after the other, and prints a line per
# target (runs, coverage, crashes). Not part of the test command: fuzzing wants minutes per
# target, and what it finds becomes a regression test in the normal suite.
#
#   scripts/fuzz.sh                 # 120 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh parser http1
#
# Needs cargo-fuzz (installed here, pinned, when missing) and libFuzzer's nightly flags, which
# the stable toolchain accepts with RUSTC_BOOTSTRAP=1. A crash leaves its input under
# fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-120}
CARGO_FUZZ_VERSION=0.13.1
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

failed=0
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${SECONDS_PER_TARGET}s"
  log=$(mktemp)
  # One job: the machine may be shared, and runs stay comparable across machines.
  if cargo fuzz run --fuzz-dir fuzz "$t" -- -max_total_time="$SECONDS_PER_TARGET" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  # libFuzzer's last status line: "#<runs> DONE cov: <edges> ft: <features> ...".
  summary=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  echo "$t: $status ${summary:-"(no status line; see the log)"}"
  [ "$status" = ok ] || tail -n 40 "$log"
  rm -f "$log"
done
exit $failed

#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, then runs
# every check (format, lints, every test, the Durable Streams conformance suite, browser
# tests). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# The relay is tested with the official `openai` Python SDK, in a venv of its own so the
# machine's Python stays untouched. Installed once; later runs reuse it.
venv=target/test-venv
if ! "$venv/bin/python" -c 'import openai' >/dev/null 2>&1; then
  step "installing the openai Python SDK into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openai>=1,<3'
fi
export SSEHUB_TEST_PYTHON="$PWD/$venv/bin/python"

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets compile"
cargo check --quiet --manifest-path fuzz/Cargo.toml

step "tests"
cargo test --workspace --locked

step "Durable Streams conformance suite"
scripts/test-durable-streams.sh

if [ -x scripts/test-web.sh ]; then
  step "browser module and pages"
  scripts/test-web.sh
fi

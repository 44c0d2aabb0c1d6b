#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, then runs
# every check (format, lints, every test, the Durable Streams conformance suite, the examples,
# browser tests). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# The Redis store's tests (the shared conformance suite included) start real `redis-server`
# processes on free loopback ports, so Redis (7.0 or newer) must be installed; it need not run.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server

# The relay is tested with the official `openai` Python SDK, in a venv of its own so the
# machine's Python stays untouched. Installed once; later runs reuse it.
venv=target/test-venv
openai_version=2.54.0
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" >/dev/null 2>&1; then
  step "installing the openai Python SDK $openai_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$openai_version"
fi
# The Messages front is tested with the official `anthropic` SDK, in the same venv. Through the
# venv's python, not its pip script: a venv copied from elsewhere keeps the old pip's shebang.
anthropic_version=2.17.0
if ! "$venv/bin/python" -c "import anthropic, sys; sys.exit(anthropic.__version__ != '$anthropic_version')" >/dev/null 2>&1; then
  step "installing the anthropic Python SDK $anthropic_version into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "anthropic==$anthropic_version"
fi
export SSEHUB_TEST_PYTHON="$PWD/$venv/bin/python"

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets compile"
cargo check --quiet --locked --manifest-path fuzz/Cargo.toml

step "tests"
cargo test --workspace --locked

step "packaging: the systemd unit (systemd-analyze verify, security score)"
scripts/test-packaging.sh

step "Durable Streams conformance suite"
scripts/test-durable-streams.sh
if [ -x scripts/test-examples.sh ]; then
  step "examples (Python, Node, PHP, curl) against a real hub"
  scripts/test-examples.sh
fi

if [ -x scripts/test-web.sh ]; then
  step "browser module and pages"
  scripts/test-web.sh
fi

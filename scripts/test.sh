#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine,
# then runs every check (format, lints, every test). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step() { printf '\n==> %s\n' "$*"; }

# System packages the tests use. Only installed when missing, so a warm machine
# pays nothing and a fresh one needs no hand-installed tool.
need_pkgs=()
for pair in "redis-server:redis-server"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "installing ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets compile"
cargo check --quiet --manifest-path fuzz/Cargo.toml

step "tests"
cargo test --workspace --locked

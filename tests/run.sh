#!/usr/bin/env bash
# The whole StayOS test suite — the README's test command, and what CI runs (.ci/run).
# Installs what it needs on a fresh machine of this kind, then checks formatting and lints
# and runs every test. Cargo's build output is cached outside the clone when possible;
# without that cache everything is built from scratch and the suite still passes.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
  echo "error: cargo is missing; this suite needs the machine's Rust toolchain (rustup)" >&2
  exit 1
fi
# rust-toolchain.toml pins the compiler; rustup installs the pinned components if absent.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Node.js runs the real cr-sqlite (WebAssembly) that the crdt crate is tested against.
if ! need node || ! need npm; then
  echo "== installing Node.js and npm (Debian packages)"
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
echo "== the cr-sqlite reference peer (npm)"
npm ci --prefix tests/crsqlite --no-audit --no-fund --loglevel=error

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/stayos/target"
  if mkdir -p "$cache" 2>/dev/null; then export CARGO_TARGET_DIR="$cache"; fi
fi
export CARGO_TERM_COLOR=never

echo "== formatting"
cargo fmt --all --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked

#!/usr/bin/env bash
# The whole StayOS test suite — the README's test command, and what CI runs (.ci/run).
# Installs what it needs on a fresh machine of this kind, then checks formatting and lints
# and runs every test.
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

# Build output stays in this checkout's own target/ (or $CARGO_TARGET_DIR if you set one).
# A target directory shared between checkouts is not safe: cargo judges freshness by file
# times, so an artifact built later from another checkout's older source counts as fresh.
export CARGO_TERM_COLOR=never

echo "== formatting"
cargo fmt --all --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked

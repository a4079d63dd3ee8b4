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

# PostgreSQL (127.0.0.1:5432, trust auth) is what the hub runs on; the sync tests give each
# test a database of its own there. Start the machine's server if it is down, or install
# Debian's if there is none.
if ! need pg_isready || ! need psql; then
  echo "== installing PostgreSQL (Debian packages)"
  apt-get update -qq && apt-get install -y -qq postgresql postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
  echo "error: PostgreSQL on 127.0.0.1:5432 does not let user postgres in without a password;" >&2
  echo "       the hub tests need trust auth for local connections (see DESIGN.md)" >&2
  exit 1
fi

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
bash tests/contract/schemathesis.sh

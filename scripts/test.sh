#!/usr/bin/env bash
# The whole test suite: the lint gate (formatting, clippy with warnings as
# errors, unused dependencies), then unit tests, the store contract suite on
# SQLite and PostgreSQL, and whole-process tests against real `paygate` binaries.
# Starts the machine's PostgreSQL and Redis if they are stopped; tests create
# their own databases and drop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${PAYGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export PAYGATE_TEST_POSTGRES_URL="$PG_URL"
export PAYGATE_TEST_REDIS_URL="${PAYGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# cargo-machete finds dependencies a crate declares but never uses. Pinned, so
# every machine judges the same way; installed on first use.
CARGO_MACHETE_VERSION=0.9.2

ensure_machete() {
  if [ "$(cargo machete --version 2>/dev/null)" = "$CARGO_MACHETE_VERSION" ]; then return 0; fi
  echo "test.sh: installing cargo-machete $CARGO_MACHETE_VERSION" >&2
  cargo install --locked "cargo-machete@$CARGO_MACHETE_VERSION"
}

# rustfmt and clippy ship with rustup's default profile, not its minimal one.
ensure_lint_components() {
  if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then return 0; fi
  if command -v rustup >/dev/null 2>&1; then
    echo "test.sh: installing the rustfmt and clippy components" >&2
    rustup component add rustfmt clippy
  fi
}

# Cheapest first, so a formatting slip fails in seconds.
lint() {
  ensure_lint_components
  cargo fmt --all -- --check
  ensure_machete
  cargo machete
  cargo clippy --workspace --all-targets --locked -- -D warnings
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  echo "test.sh: PostgreSQL is not answering; starting it" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
    sleep 1
  done
  echo "test.sh: PostgreSQL is required on 127.0.0.1:5432 and could not be started" >&2
  exit 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  echo "test.sh: Redis is not answering; starting it" >&2
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "test.sh: Redis is required on 127.0.0.1:6379 and could not be started" >&2
  exit 1
}

# Real tools for the deployment checks (tests/ops.rs runs scripts/check-deploy.sh):
# promtool from Debian's prometheus package, PyYAML from PyPI. Best effort: when
# they cannot be installed, check-deploy.sh says which checks it skipped.
ensure_check_tools() {
  if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing promtool (Debian package prometheus)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
      >/tmp/paygate-test-apt.log 2>&1 || echo "test.sh: could not install promtool (see /tmp/paygate-test-apt.log)" >&2
  fi
  if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    python3 -m pip install --quiet pyyaml >/dev/null 2>&1 || echo "test.sh: could not install PyYAML" >&2
  fi
}

lint
ensure_postgres
ensure_redis
ensure_check_tools

# One build shared by every test binary; whole-process tests run that build's binary.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${PAYGATE_TEST_THREADS:-4}"

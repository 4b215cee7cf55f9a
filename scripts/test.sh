#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust: installs and starts what the
# tests need, then formatting, lints and every test. This is the README's test command and what
# .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_test_database
log "tests use DATABASE_URL=$DATABASE_URL"
# Real SIP peers for the interop tests, SIPVicious for the attack test; Chromium for the agent desktop's browser tests.
apt_install sip-tester baresip sipvicious espeak-ng chromium fonts-wqy-microhei iproute2
# The pages (agent desktop) and playwright-core, which drives Chromium.
scripts/web.sh
export SQLX_OFFLINE=true

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  log "cargo nextest run"
  cargo nextest run --workspace --lib --bins --tests --locked --no-fail-fast
  log "doc tests"
  cargo test --workspace --doc --locked
else
  log "cargo test (cargo-nextest not installed)"
  cargo test --workspace --lib --bins --tests --locked --no-fail-fast
  cargo test --workspace --doc --locked
fi
log "all tests passed"

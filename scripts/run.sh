#!/usr/bin/env bash
# Runs the hotline with the demo configuration, from a fresh Debian machine with Rust:
# installs PostgreSQL's programs if they are missing (the node runs its own private cluster in
# data/postgres unless DATABASE_URL or database.url names a server), builds, and serves.
# Extra arguments go to `hotline`, e.g. `scripts/run.sh --log-format json`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_pg_binaries || { log "PostgreSQL's server programs are needed: apt-get install postgresql"; exit 1; }
fi
# The IVR speaks text prompts with espeak-ng (needed once `ivr.script` is set).
apt_install espeak-ng || log "without espeak-ng, an IVR script with text prompts will not load"
# The agent desktop's pages (npm: JsSIP bundled with esbuild) into web/dist.
scripts/web.sh
cargo build --release --locked --bin hotline
exec target/release/hotline --config "${HOTLINE_CONFIG:-config/hotline.example.toml}" "$@" serve

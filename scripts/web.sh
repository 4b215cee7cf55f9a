#!/usr/bin/env bash
# Builds the pages into web/dist: installs the pinned npm packages (web/package-lock.json:
# JsSIP, esbuild, and playwright-core for the browser tests) when they are missing or stale,
# then bundles the agent desktop. Installs Node.js and npm from Debian if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm || { log "Node.js and npm are needed to build the pages"; exit 1; }
fi
cd web
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci (web/)"
  npm ci --no-audit --no-fund --loglevel=error
fi
node build.mjs

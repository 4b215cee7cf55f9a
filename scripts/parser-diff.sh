#!/usr/bin/env bash
# Differential run of the SIP parser against an earlier commit's parser (not part of CI):
# the same verdicts, status codes, serialization and typed values on the shared corpora and
# random mutations of them. Use it before and after any change to sip/src/message.
# Usage: scripts/parser-diff.sh [commit, default HEAD] [mutation rounds, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
rounds=${2:-50}
dir=sip/parser-diff/old
rm -rf "$dir" && mkdir -p "$dir"
git archive "$rev" sip/Cargo.toml sip/src | tar -x -C "$dir"
# The old crate on its own: renamed, outside the workspace's lints, without dev-dependencies
# and benches.
sed -i -e 's/^name = "hotline-sip"$/name = "hotline-sip-old"/' \
  -e 's/^edition\.workspace = true$/edition = "2024"/' \
  -e '/\.workspace = true$/d' -e '/^\[lints\]$/d' -e '/^workspace = true$/d' \
  -e '/^\[dev-dependencies\]$/,$d' "$dir/sip/Cargo.toml"
cd sip/parser-diff
cargo run --release -- "$rounds"

#!/usr/bin/env bash
# Runs the parser fuzz targets (cargo-fuzz, libFuzzer) for a bounded time each; not part of CI.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
# The machine's stable toolchain is told to allow the sanitizer flags (RUSTC_BOOTSTRAP=1), as
# no nightly toolchain can be fetched here. The corpus seeds come from ../shared/corpora.
set -euo pipefail
cd "$(dirname "$0")/../sip"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
corpus=../../shared/corpora
mkdir -p fuzz/corpus/parse_message
if [ -d "$corpus/rfc4475" ]; then
  cp -n "$corpus"/rfc4475/*.dat "$corpus"/rfc5118/*.dat fuzz/corpus/parse_message/ 2>/dev/null || true
fi
# cargo-fuzz sets RUSTFLAGS, which replaces .cargo/config.toml's target CPU: name it here so
# the SSSE3 paths of the parser (sip/src/message/simd.rs) are the ones fuzzed.
for target in parse_message stream_framer; do
  RUSTFLAGS="-C target-cpu=x86-64-v2" RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done

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
# The old crate on its own: renamed, outside the workspace's lints and dev-dependencies.
python3 - "$dir/sip/Cargo.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('name = "hotline-sip"', 'name = "hotline-sip-old"')
s = s.replace('edition.workspace = true', 'edition = "2024"')
s = s.replace('[lints]\nworkspace = true\n', '')
s = re.sub(r'[\w-]+\.workspace = true\n', '', s)
s = s.split('[dev-dependencies]')[0].split('[[bench]]')[0]
open(p, 'w').write(s)
PY
cd sip/parser-diff
cargo run --release -- "$rounds"

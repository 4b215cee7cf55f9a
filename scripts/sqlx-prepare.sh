#!/usr/bin/env bash
# Regenerates .sqlx (the offline query data the build uses) from a scratch database migrated
# with migrations/*.sql. Run it after changing a migration or a query! / query_as! macro, and
# commit .sqlx. Needs a PostgreSQL server: BASE_URL (default: the local server on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BASE_URL:-postgres://postgres@127.0.0.1:5432}
db=hotline_sqlx_prepare_$$
psql -q "$base/postgres" -c "CREATE DATABASE $db"
trap 'psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for f in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$base/$db" -f "$f"
done
rm -rf .sqlx && mkdir .sqlx
cargo clean -p hotline -q
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" DATABASE_URL="$base/$db" \
  cargo check -q --workspace --all-targets
echo "wrote $(ls .sqlx | wc -l) query file(s) to .sqlx"

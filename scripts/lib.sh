# Shared by scripts/run.sh and scripts/test.sh: install what is missing, find PostgreSQL.
# Sourced, not run.

log() { printf '==> %s\n' "$*" >&2; }

# apt_install PKG...: installs Debian packages that are missing (as root; otherwise says what
# to run and fails).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    return 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# ensure_pg_binaries: the PostgreSQL server programs (initdb, postgres) and client (psql).
ensure_pg_binaries() {
  if ! pg_bindir >/dev/null || ! command -v psql >/dev/null; then
    apt_install postgresql
  fi
  pg_bindir >/dev/null
}

# ensure_test_database: exports DATABASE_URL for a server where the tests may create and drop
# databases. Order: the caller's DATABASE_URL; the machine's server on 127.0.0.1:5432 with
# trust auth (started if it is installed but stopped); else a private throwaway cluster under
# $HOTLINE_TEST_PG (default /var/tmp/hotline-test-pg) on 127.0.0.1:55432.
ensure_test_database() {
  ensure_pg_binaries || return 1
  if [ -n "${DATABASE_URL:-}" ] && psql -q "$DATABASE_URL" -c 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  local url=postgres://postgres@127.0.0.1:5432/postgres
  if ! psql -q "$url" -c 'select 1' >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null; then
    local ver
    ver=$(pg_lsclusters -h 2>/dev/null | awk '$2=="main"{print $1}' | head -n 1)
    if [ -n "$ver" ]; then
      log "starting PostgreSQL cluster $ver/main"
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
      for _ in $(seq 1 50); do psql -q "$url" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    fi
  fi
  if psql -q "$url" -c 'select 1' >/dev/null 2>&1; then
    export DATABASE_URL=$url
    return 0
  fi
  start_private_cluster
}

start_private_cluster() {
  local bin dir port=55432 as=()
  bin=$(pg_bindir)
  dir=${HOTLINE_TEST_PG:-/var/tmp/hotline-test-pg}
  local url=postgres://postgres@127.0.0.1:$port/postgres
  if psql -q "$url" -c 'select 1' >/dev/null 2>&1; then
    export DATABASE_URL=$url
    return 0
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as=(runuser -u postgres --)
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "creating a private test cluster in $dir"
    "${as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C --no-instructions >/dev/null
  fi
  log "starting the private test cluster on 127.0.0.1:$port"
  "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null
  export DATABASE_URL=$url
}

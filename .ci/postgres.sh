#!/usr/bin/env bash
# Make a PostgreSQL server answer on 127.0.0.1:5432 for the warehouse tests, and export its URL.
# Sourced by .ci/run (so the export reaches `make test`); safe to run again: quick when a server
# already answers. Installs Debian's `postgresql` package when the machine has none. Never fails
# the CI run by itself: without a server the PostgreSQL tests skip with a reason.
_gc_pg() {
  local host=127.0.0.1 port=5432 url="postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"
  _gc_pg_up() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
  if _gc_pg_up; then
    export GROWTHCURVE_TEST_PG_URL="${GROWTHCURVE_TEST_PG_URL:-$url}"
    echo "postgres.sh: a server already answers on $host:$port"
    return 0
  fi
  if [ "$(id -u)" != "0" ]; then
    echo "postgres.sh: no server on $host:$port and not root: PostgreSQL tests will skip"
    return 0
  fi
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
      || { echo "postgres.sh: apt-get install postgresql failed: PostgreSQL tests will skip"; return 0; }
  fi
  local ver
  ver="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$ver" ]; then
    echo "postgres.sh: no PostgreSQL binaries found: PostgreSQL tests will skip"
    return 0
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$ver main"; then
    pg_createcluster -q "$ver" main -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null \
      || { echo "postgres.sh: pg_createcluster failed: PostgreSQL tests will skip"; return 0; }
  fi
  pg_ctlcluster "$ver" main start -o "-c listen_addresses=127.0.0.1 -c port=$port" 2>&1 | tail -n 3 || true
  local i
  for i in $(seq 1 30); do _gc_pg_up && break; sleep 0.5; done
  if ! _gc_pg_up; then
    echo "postgres.sh: the server did not start: PostgreSQL tests will skip"
    return 0
  fi
  (cd / && su postgres -c "psql -q -X -c \"ALTER USER postgres PASSWORD 'postgres'\"") >/dev/null \
    || { echo "postgres.sh: could not set the postgres password: PostgreSQL tests will skip"; return 0; }
  export GROWTHCURVE_TEST_PG_URL="$url"
  echo "postgres.sh: PostgreSQL $ver runs on $host:$port"
}
_gc_pg
unset -f _gc_pg _gc_pg_up

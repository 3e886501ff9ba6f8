#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for the tests and prints its URL
# (postgres://postgres@127.0.0.1:PORT/postgres) on the last line. The
# cluster lives in DIR (the first argument; made if missing, and handed to
# the `postgres` account): its data, its socket and its log; `tests/postgres.sh stop DIR` stops it.
#
# It runs as the `postgres` account from Debian's packages (initdb refuses
# root), listens on loopback only, and trusts connections from loopback:
# it is for tests, never for a school's data. The console's tests read the
# URL from POSTGRES_TEST_URL; `tests/run` sets it.
set -euo pipefail

bin=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bin=$d
done
if [ -z "$bin" ]; then
  echo "tests/postgres.sh: no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb); apt-get install postgresql" >&2
  exit 1
fi

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-}" = stop ]; then
  dir=$2
  as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

dir=${1:?usage: tests/postgres.sh DIR | tests/postgres.sh stop DIR}
mkdir -p "$dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
# A free port on loopback: ask the kernel for one.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Many test databases at once, each with a few connections.
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=on" start >/dev/null || {
  cat "$dir/server.log" >&2
  exit 1
}
echo "postgres://postgres@127.0.0.1:$port/postgres"

#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for the test-suite (and `make pg` by hand).
#   scripts/postgres.sh start   install Debian's postgresql when missing, init, start, write .run/postgres.env
#   scripts/postgres.sh stop    stop it (the data stays in .run/postgres until `clean`)
#   scripts/postgres.sh clean   stop and delete the data
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR="$PWD/.run"
DATA="$RUN_DIR/postgres"
PORT="${JITADMIN_TEST_PG_PORT:-54329}"
HOST=127.0.0.1
ENV_FILE="$RUN_DIR/postgres.env"

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && echo "$found"
}

install_if_missing() {
  if [ -z "$(pg_bin)" ]; then
    echo "postgres.sh: installing Debian's postgresql" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package starts a cluster of its own; we only want ours.
    (command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop || true; done) || true
  fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  install_if_missing
  local bin
  bin=$(pg_bin)
  mkdir -p "$RUN_DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
    as_postgres "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if as_postgres "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    # Already up (perhaps started on another port): describe the server that really runs.
    PORT=$(sed -n 4p "$DATA/postmaster.pid")
    echo "postgres.sh: already running on $HOST:$PORT" >&2
  else
    as_postgres "$bin/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
      -o "-c listen_addresses=$HOST -p $PORT -k $DATA -c fsync=off -c max_connections=200" start >/dev/null
  fi
  cat >"$ENV_FILE" <<ENV
JITADMIN_TEST_POSTGRES_URL=postgresql+psycopg://postgres@$HOST:$PORT/postgres
ENV
  echo "postgres.sh: running on $HOST:$PORT ($ENV_FILE)" >&2
}

stop() {
  local bin
  bin=$(pg_bin || true)
  if [ -n "$bin" ] && [ -f "$DATA/PG_VERSION" ]; then
    as_postgres "$bin/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -f "$ENV_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  clean) stop; rm -rf "$DATA" ;;
  *) echo "usage: $0 start|stop|clean" >&2; exit 2 ;;
esac

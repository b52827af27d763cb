#!/bin/bash
# tests/harness/pg.sh: a throw-away PostgreSQL (Debian's postgresql-15 or newer) for the
# tests, listening on a unix socket only.  Runs as root: initdb and the server run as the
# postgres user through runuser.  Durability off (fsync) except that a COMMIT is written
# to the WAL before it is acknowledged (synchronous_commit on), so a killed server keeps
# every acknowledged transaction, as a real one does.
#
#   eval "$(tests/harness/pg.sh start [DIR])"   exports PGHOST PGPORT PGUSER PGDATABASE PGTEST_DIR
#   tests/harness/pg.sh stop DIR                 stop (immediate) and remove DIR
#   tests/harness/pg.sh kill DIR                 stop at once (like a crash), keep the data
#   tests/harness/pg.sh resume DIR               start the server of DIR again
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "pg.sh: must run as root" >&2; exit 1; }

server_start() {
  local D=$1
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 30 \
    -o "-c listen_addresses='' -k $D -c fsync=off -c synchronous_commit=on -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$D/server.log" >&2; exit 1; }
}

case "${1:-}" in
start)
  D=${2:-$(mktemp -d -t pgtest.XXXXXX)}
  mkdir -p "$D"; chown postgres: "$D"; chmod 700 "$D"
  if [ ! -d "$D/data" ]; then
    runuser -u postgres -- "$BIN/initdb" -D "$D/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$D/initdb.log" 2>&1 || { cat "$D/initdb.log" >&2; exit 1; }
  fi
  server_start "$D"
  echo "export PGHOST=$D PGPORT=5432 PGUSER=postgres PGDATABASE=postgres PGTEST_DIR=$D"
  ;;
stop)
  D=${2:?usage: pg.sh stop DIR}
  [ -d "$D/data" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$D"
  ;;
kill)
  D=${2:?usage: pg.sh kill DIR}
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -m immediate -w stop >/dev/null
  ;;
resume)
  D=${2:?usage: pg.sh resume DIR}
  server_start "$D"
  ;;
*)
  echo "usage: pg.sh start [DIR] | stop DIR | kill DIR | resume DIR" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# One runner per database: a second `sluice run` on the same database refuses to start
# with a clear message (SQLite: the lock of the database file, also from another state
# directory; PostgreSQL: an advisory lock, also from another state directory); SIGTERM
# stops the first one with
# no busy row left, and the lock is free again afterwards.
source "$(dirname "$0")/../harness/env.sh"
source "$ROOT/tests/db/pglib.sh"
need_nix
cd "$ROOT"

check_backend() {
    local url=$1 other_state=$2 pid rc=0
    SLUICE_STATE_DIR=$T/s1 "$SLUICE" run --db "$url" >"$T/first.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q "machine(s) loaded" "$T/first.log" && break; sleep 0.05; done
    SLUICE_STATE_DIR=$other_state timeout 20 "$SLUICE" run --db "$url" >"$T/second.log" 2>&1 || rc=$?
    [ "$rc" != 0 ] || fail "$url: a second runner started"
    [ "$rc" != 124 ] || fail "$url: the second runner hung instead of refusing"
    grep -qi "another\|already\|lock" "$T/second.log" || fail "$url: unclear message: $(cat "$T/second.log")"
    echo "second runner refused ($url): $(tail -1 "$T/second.log")"
    kill -TERM $pid
    wait $pid || fail "$url: first runner exited non-zero on SIGTERM: $(tail -3 "$T/first.log")"
    # the lock is free again
    SLUICE_STATE_DIR=$other_state timeout 60 "$SLUICE" run --once --db "$url" >"$T/third.log" 2>&1 ||
        fail "$url: a runner after the first one stopped could not start: $(cat "$T/third.log")"
}

mkdir -p "$T/s1"
check_backend "sqlite:$T/s1/sluice.db" "$T/s1"
check_backend "sqlite:$T/s1/sluice.db" "$T/s3"
pg_server
url=$(pg_new_db "lock_$$")
"$SLUICE" db init --db "$url" >/dev/null
check_backend "$url" "$T/s2"
echo ok

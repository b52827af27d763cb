#!/usr/bin/env bash
# The connection to PostgreSQL is lost while `sluice run` runs its start-up statements
# (clearing a previous runner's busy rows): the runner reconnects, runs them again and
# goes on to build what is queued, instead of ending with "may or may not have been
# applied".  Deterministic: another session holds a lock on BuildSteps so the
# runner's UPDATE waits, and its backend is terminated while it waits.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../db/pglib.sh"
need_nix
cd "$ROOT"
pg_server
URL=$(pg_new_db "pgstartup_$$")
q() { pg_sql "$URL" "$1"; }
LOCKER=
DIR=$T/dir
mkdir -p "$DIR"
"$SLUICE" db init --db "$URL" >/dev/null
"$SLUICE" submit --db "$URL" "$ROOT/tests/runner/nix/jobs.nix" --argstr salt "pgstart$(date +%s%N)" \
    --argstr dir "$DIR" -A mid >"$T/ids" || fail "submit"
id=$(head -1 "$T/ids")

# a session that holds BuildSteps until it is terminated
psql -X -q -d "$URL" -c "BEGIN; LOCK TABLE BuildSteps IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);" \
    >/dev/null 2>&1 &
LOCKER=$!
locked() { [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'buildsteps' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]; }
wait_until 20 locked || fail "the lock on BuildSteps was never taken"

"$SLUICE" run --db "$URL" --once >"$T/run.log" 2>&1 &
pid=$!
waiting_pid() { q "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE BuildSteps SET busy = 0%'"; }
waiting() { [ -n "$(waiting_pid)" ]; }
wait_until 30 waiting || { cat "$T/run.log"; fail "the runner's start-up UPDATE never waited on the lock"; }
q "SELECT pg_terminate_backend($(waiting_pid))" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$LOCKER" 2>/dev/null || true
LOCKER=

rc=0
for _ in $(seq 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
    kill -TERM $pid
    wait $pid || true
    cat "$T/run.log"
    fail "the runner did not finish the queued build within 60 s"
fi
wait $pid || rc=$?
[ $rc -eq 0 ] || { cat "$T/run.log"; fail "sluice run exited with $rc after losing the connection at start-up"; }
grep -q "start-up: .*trying again" "$T/run.log" || { cat "$T/run.log"; fail "no start-up retry logged"; }
assert_eq "$(q "SELECT finished || '|' || buildStatus FROM Builds WHERE id = $id")" "1|0" "the build after the retry"
echo "ok: a connection lost at start-up is retried"

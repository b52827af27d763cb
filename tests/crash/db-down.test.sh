#!/usr/bin/env bash
# The database goes away under a running `sluice run` (its own PostgreSQL server,
# stopped with -m immediate while a step is building):
#  - SIGTERM then ends the runner within 10 s, exit status 0 (it does not sit in the
#    reconnect loop; no busy row can be cleared, the next start clears it and builds
#    the interrupted step again: no step is lost);
#  - left alone, `run` exits with status 1 once the documented reconnect timeout (60 s)
#    has passed, naming the lost connection.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v psql >/dev/null || skip "psql not installed"
cd "$ROOT"

PGD=$(mktemp -d /tmp/sluice-pgd.XXXXXX)
eval "$(bash tests/harness/pg.sh start "$PGD")"
trap 'bash "$ROOT/tests/harness/pg.sh" stop "$PGD" >/dev/null 2>&1 || true; rm -rf "$PGD"' EXIT
URL="postgresql://postgres@/postgres?host=$PGD"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$URL" -c "$1"; }
DIR=$T/dir
mkdir -p "$DIR"
"$SLUICE" db init --db "$URL" >/dev/null
JOBS=$ROOT/tests/runner/nix/jobs.nix
busy() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE busy = 30")" -ge 1 ]; }
wait_until() {
    local n=$(($1 * 10)); shift
    while [ $n -gt 0 ]; do "$@" 2>/dev/null && return 0; sleep 0.1; n=$((n - 1)); done
    return 1
}

# --- SIGTERM with the database down
"$SLUICE" submit --db "$URL" "$JOBS" --argstr salt "dbdown$(date +%s%N)" --argstr dir "$DIR" -A gate >/dev/null
"$SLUICE" run --db "$URL" >"$T/run1.log" 2>&1 &
pid=$!
wait_until 30 busy || { cat "$T/run1.log"; fail "the gate step never started"; }
bash tests/harness/pg.sh kill "$PGD" >/dev/null 2>&1 || fail "cannot stop PostgreSQL"
sleep 2
t0=$(date +%s%N)
kill -TERM $pid
rc=0
for _ in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    cat "$T/run1.log"
    fail "the runner still runs 15 s after SIGTERM with the database down"
fi
wait $pid || rc=$?
dt=$((($(date +%s%N) - t0) / 1000000))
echo "SIGTERM with the database down: exit $rc after $dt ms"
[ "$dt" -le 10000 ] || { cat "$T/run1.log"; fail "SIGTERM took $dt ms (limit 10 s)"; }
assert_eq "$rc" 0 "exit status after SIGTERM"
touch "$DIR/go"

# --- no step lost: the interrupted step is built again by the next start
bash tests/harness/pg.sh resume "$PGD" >/dev/null 2>&1 || fail "cannot restart PostgreSQL"
first=$(q "SELECT id FROM Builds ORDER BY id LIMIT 1")
"$SLUICE" run --db "$URL" --once >"$T/run1b.log" 2>&1 || { cat "$T/run1b.log"; fail "run --once after the restart"; }
assert_eq "$(q "SELECT finished, buildStatus FROM Builds WHERE id = $first")" "1|0" \
    "the interrupted build, after the restart"
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "busy rows after the restart"
assert_eq "$(q "SELECT string_agg(coalesce(status, -1)::text, ' ' ORDER BY stepnr) FROM BuildSteps
                WHERE build = $first")" "3 0" "the interrupted step's row (aborted), then the step redone"

# --- left alone: exit 1 after the reconnect timeout
rm -f "$DIR/go"
"$SLUICE" submit --db "$URL" "$JOBS" --argstr salt "dbdown2$(date +%s%N)" --argstr dir "$DIR" -A gate >/dev/null
"$SLUICE" run --db "$URL" >"$T/run2.log" 2>&1 &
pid=$!
wait_until 30 busy || { cat "$T/run2.log"; fail "the second gate step never started"; }
bash tests/harness/pg.sh kill "$PGD" >/dev/null 2>&1 || fail "cannot stop PostgreSQL"
t0=$(date +%s)
rc=0
for _ in $(seq 1000); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    tail -5 "$T/run2.log"
    fail "the runner still runs 100 s after the database went away"
fi
wait $pid || rc=$?
dt=$(($(date +%s) - t0))
touch "$DIR/go"
echo "database gone: exit $rc after $dt s"
assert_eq "$rc" 1 "exit status once the reconnect timeout passed"
[ "$dt" -ge 55 ] || fail "gave up after $dt s, before the 60 s reconnect timeout"
grep -q "not re-established within 60 s" "$T/run2.log" || { tail -5 "$T/run2.log"; fail "no message naming the lost connection"; }

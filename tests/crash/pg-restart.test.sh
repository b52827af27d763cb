#!/usr/bin/env bash
# PostgreSQL killed and restarted in the middle of a run, three times: after each restart
# the runner logs a reconnect (asserted per round, so a kill that missed fails the test);
# in-doubt commits are settled through sluice_txlog by the db layer; nothing committed is
# lost or written twice, no step stays busy, and every build ends as an uninterrupted run ends.
# Uses its own PostgreSQL server (it is killed), a 200-node CA graph and a failing job.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v psql >/dev/null || skip "psql not installed"
cd "$ROOT"

PGD=$(mktemp -d /tmp/sluice-pgk.XXXXXX)
eval "$(bash tests/harness/pg.sh start "$PGD")"
trap 'bash "$ROOT/tests/harness/pg.sh" stop "$PGD" >/dev/null 2>&1 || true' EXIT
URL="postgresql://postgres@/postgres?host=$PGD"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$URL" -c "$1"; }

"$SLUICE" db init --db "$URL" >/dev/null
# 500 nodes: on an idle machine the run outlasts the three rounds; the runner is not
# started with --once, so on a fast machine it is still there for every kill (it is
# stopped with SIGTERM once every build is finished)
"$SLUICE" submit --db "$URL" tests/crash/nix/crash.nix --argstr salt "pg$RANDOM$$" \
    --argstr counter "$T/counter" --argstr n 500 >/dev/null
"$SLUICE" run --db "$URL" >"$T/run.log" 2>&1 &
pid=$!
# reconnects: the runner's log lines (db.c) counted at each moment
lost() { grep -c "connection to PostgreSQL at .* lost; reconnecting" "$T/run.log" || true; }
back() { grep -c "reconnected to PostgreSQL at" "$T/run.log" || true; }
back_after() { [ "$(back)" -gt "$1" ]; }
for round in 1 2 3; do
    sleep 2
    kill -0 $pid 2>/dev/null || fail "round $round: the runner ended before PostgreSQL was killed"
    back0=$(back)
    bash tests/harness/pg.sh kill "$PGD" >/dev/null 2>&1 || fail "cannot kill PostgreSQL"
    echo "round $round: PostgreSQL killed"
    sleep 2
    bash tests/harness/pg.sh resume "$PGD" >/dev/null 2>&1 || fail "cannot restart PostgreSQL"
    echo "round $round: PostgreSQL back"
    # the runner noticed the loss and reconnected (not merely survived)
    for _ in $(seq 300); do back_after "$back0" && break; sleep 0.1; done
    back_after "$back0" || fail "round $round: no reconnect logged within 30 s of the restart"
    echo "round $round: $(lost) losses, $(back) reconnects logged so far;" \
        "$(q 'SELECT count(*) FROM Builds WHERE finished = 0') builds unfinished"
done
for _ in $(seq 600); do
    kill -0 $pid 2>/dev/null || fail "the runner ended on its own: $(tail -5 "$T/run.log")"
    [ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ] && break
    sleep 0.5
done
kill -TERM $pid
wait $pid || fail "the runner failed: $(tail -5 "$T/run.log")"

[ "$(q 'SELECT count(*) FROM BuildSteps WHERE busy <> 0')" = 0 ] || fail "busy rows left"
[ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ] || fail "unfinished builds left"
bad=$(q "SELECT drvPath FROM BuildSteps WHERE type = 0 AND status = 0 GROUP BY drvPath HAVING count(*) > 1")
[ -z "$bad" ] || fail "a derivation has two successful build rows: $bad"
bad=$(q "SELECT build, drvPath FROM BuildSteps WHERE status = 13 GROUP BY build, drvPath HAVING count(*) > 1")
[ -z "$bad" ] || fail "two status-13 rows for one (build, drv): $bad"
bad=$(q "SELECT build, stepnr FROM BuildSteps s WHERE type = 0 AND status = 0 AND NOT EXISTS
         (SELECT 1 FROM BuildStepOutputs o WHERE o.build = s.build AND o.stepnr = s.stepnr AND o.path IS NOT NULL)")
[ -z "$bad" ] || fail "successful rows without recorded outputs: $bad"
bad=$(q "SELECT id, job, buildStatus FROM Builds WHERE
         (job = 'fails' AND buildStatus <> 1) OR (job = 'afterFail' AND buildStatus <> 2) OR
         (job NOT IN ('fails', 'afterFail') AND buildStatus <> 0)")
[ -z "$bad" ] || fail "builds with another status than an uninterrupted run gives: $bad"
for p in $(q "SELECT DISTINCT path FROM BuildStepOutputs WHERE path IS NOT NULL"); do
    nix-store --check-validity "$p" 2>/dev/null || fail "recorded output $p is not valid"
done
[ "$(back)" -ge 3 ] && [ "$(lost)" -ge "$(back)" ] ||
    fail "expected a loss before each reconnect: $(lost) losses, $(back) reconnects"
echo "ok: $(lost) connection losses, $(back) reconnects"


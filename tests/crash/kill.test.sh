#!/usr/bin/env bash
# Crash safety: a CA-heavy workload (a 200-node content-addressed DAG, a failing CA job
# and a CA job depending on it) while the runner is killed with SIGKILL at random moments
# and at named crash points, restarted each time.  Runs in a private /nix (a mount
# namespace with an empty directory over /nix) so `nix-store --gc` touches only the
# test's own store.  Every third run is started with a named crash point (in turn; the
# turn passes on once the point fired), and each named point must have fired (its log
# line) at least once.  After every kill:
#   - the rows busy at the kill are cleared (busy 0, status 3) by the next runner within
#     10 s of its start, checked at every restart (and some restart must have had some)
#   - at most one status-13 row per (build, drvPath)
#   - no drvPath has two status-0 type-0 rows
#   - no derivation whose outputs were recorded is built again (builders count their
#     runs in a file outside the store)
#   - after `nix-store --gc`, every resolved .drv of an unfinished build is still valid
#   - every output path the database records is valid
# At the end every build has the status of an uninterrupted run (0, the failing job 1,
# its dependent 2).
#
#   SLUICE_CRASH_KILLS   number of kills (default 50; bench/crash-soak.sh uses 200+)
#   SLUICE_CRASH_SEED    seed of the random moments (printed; default: fresh)
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v unshare >/dev/null || skip "unshare (util-linux) missing"
command -v sqlite3 >/dev/null || skip "sqlite3 missing"

KILLS=${SLUICE_CRASH_KILLS:-50}
SEED=${SLUICE_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
echo "kills: $KILLS, seed: $SEED (replay: SLUICE_CRASH_SEED=$SEED)"

if [ -z "${SLUICE_CRASH_INNER:-}" ]; then
    mkdir -p "$T/nix"
    SLUICE_CRASH_INNER=1 SLUICE_CRASH_KILLS=$KILLS SLUICE_CRASH_SEED=$SEED \
        unshare --mount --propagation private \
        bash -c 'mount --bind "$1" /nix && exec bash "$2"' sh "$T/nix" "$0"
    exit $?
fi

cd "$ROOT"
RANDOM=$SEED
COUNTER=$T/counter
DB=$SLUICE_STATE_DIR/sluice.db
: >"$COUNTER"
: >"$T/busy.kill"
export SLUICE_LOG=1
CRASH_POINTS=(after-resolved-row before-resolved-root after-build inside-finish-tx)

q() { sqlite3 -batch "$DB" "$1"; }
declare -A CHOSEN FIRED

BUSY_CHECKED=0

# busy_at_kill: the rows a killed runner left busy ("build|stepnr" lines)
busy_at_kill() { q "SELECT build || '|' || stepnr FROM BuildSteps WHERE busy <> 0 ORDER BY 1" >"$T/busy.kill"; }

# old_busy_cleared: none of the rows in busy.kill is still busy, and each got a status
old_busy_cleared() {
    local where
    where=$(sed -E "s/^([0-9]+)\|([0-9]+)$/(build = \1 AND stepnr = \2)/" "$T/busy.kill" | paste -sd'|' - |
        sed 's/|/ OR /g')
    [ "$(q "SELECT count(*) FROM BuildSteps WHERE ($where) AND (busy <> 0 OR status IS NULL)")" = 0 ]
}

submit_round() {
    local salt=r$1
    "$SLUICE" submit tests/crash/nix/crash.nix --argstr salt "$salt" --argstr counter "$COUNTER" \
        >"$T/submit.out" 2>"$T/submit.err" || { cat "$T/submit.err"; fail "submit failed"; }
}

# The derivations recorded as built so far, with how often their builder ran.
snapshot() {
    q "SELECT DISTINCT drvPath FROM BuildSteps WHERE type = 0 AND status = 0" |
        sed 's|^/nix/store/[a-z0-9]*-||; s|\.drv$||' | sort -u >"$T/recorded.now"
    sort "$COUNTER" | uniq -c | awk '{print $2, $1}' | sort >"$T/counts.now"
}

check_invariants() {
    local it=$1 bad
    bad=$(q "SELECT build, drvPath, count(*) FROM BuildSteps WHERE status = 13
             GROUP BY build, drvPath HAVING count(*) > 1")
    [ -z "$bad" ] || fail "kill $it: two status-13 rows for one (build, drv): $bad"
    bad=$(q "SELECT drvPath, count(*) FROM BuildSteps WHERE type = 0 AND status = 0
             GROUP BY drvPath HAVING count(*) > 1")
    [ -z "$bad" ] || fail "kill $it: built twice (two status-0 type-0 rows): $bad"
    # derivations recorded at an earlier kill must not have run again since (one awk
    # over the three lists: hundreds of names by the end)
    if [ -f "$T/recorded.prev" ]; then
        bad=$(awk 'FILENAME == ARGV[1] { rec[$1] = 1; next }
                   FILENAME == ARGV[2] { before[$1] = $2; next }
                   { after[$1] = $2 }
                   END { for (n in rec) if (before[n] + 0 != after[n] + 0)
                             printf "%s (%d -> %d) ", n, before[n], after[n] }' \
            "$T/recorded.prev" "$T/counts.prev" "$T/counts.now")
        [ -z "$bad" ] || fail "kill $it: ran again after its outputs were recorded: $bad"
    fi
    # GC (every fifth kill and at the end): resolved drvs of unfinished builds survive;
    # recorded outputs are valid (one nix-store call per list)
    if [ "$it" = final ] || [ $((it % 5)) = 0 ]; then
        nix-store --gc >/dev/null 2>&1 || fail "kill $it: nix-store --gc failed"
    fi
    local paths
    paths=$(q "SELECT DISTINCT '/nix/store/' || s.resolvedDrvPath FROM BuildSteps s
               JOIN Builds b ON b.id = s.build WHERE s.status = 13 AND b.finished = 0")
    if [ -n "$paths" ]; then
        # shellcheck disable=SC2086
        nix-store --check-validity $paths 2>"$T/valid.err" ||
            fail "kill $it: a resolved drv of an unfinished build was collected: $(cat "$T/valid.err")"
    fi
    paths=$(q "SELECT DISTINCT path FROM BuildStepOutputs WHERE path IS NOT NULL
               UNION SELECT path FROM BuildOutputs WHERE path IS NOT NULL")
    if [ -n "$paths" ]; then
        # shellcheck disable=SC2086
        nix-store --check-validity $paths 2>"$T/valid.err" ||
            fail "kill $it: a recorded output is not valid: $(cat "$T/valid.err")"
    fi
}

# one_run POINT: start a runner (with the named crash point, if any), kill it -9 (a
# named point kills itself; the test waits up to 30 s for it, a slow start under a
# sanitizer included, or until every build is finished), then check every invariant
one_run() {
    local point=$1 pid log
    if [ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ]; then
        round=$((round + 1))
        submit_round $round
    fi
    snapshot
    cp "$T/recorded.now" "$T/recorded.prev"
    cp "$T/counts.now" "$T/counts.prev"
    [ -z "$point" ] || CHOSEN[$point]=$((${CHOSEN[$point]:-0} + 1))
    log=$T/run-$kills.log
    SLUICE_CRASH_POINT=$point "$SLUICE" run >"$log" 2>&1 &
    pid=$!
    # the first thing a runner does is clearing the rows its killed predecessor left busy
    if [ -s "$T/busy.kill" ]; then
        wait_until 10 old_busy_cleared ||
            fail "restart $kills: rows left busy by the killed runner are still busy 10 s after the restart: $(tr '\n' ' ' <"$T/busy.kill")"
        BUSY_CHECKED=$((BUSY_CHECKED + 1))
    fi
    if [ -n "$point" ]; then
        # until the point fires, or nothing is left to do (a point of a later round)
        for i in $(seq 600); do
            kill -0 $pid 2>/dev/null || break
            if [ $((i % 20)) = 0 ] && [ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ]; then
                break
            fi
            sleep 0.05
        done
    else
        sleep "$((RANDOM % 2)).$((RANDOM % 10))"
    fi
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    cat "$log" >>"$T/run.log"
    LAST_FIRED=0
    if [ -n "$point" ] && grep -q "crash point '$point' reached" "$log"; then
        FIRED[$point]=$((${FIRED[$point]:-0} + 1))
        LAST_FIRED=1
    fi
    rm -f "$log"
    busy_at_kill
    kills=$((kills + 1))
    snapshot
    check_invariants $kills
    echo "kill $kills ${point:+at $point }done: $(q 'SELECT count(*) FROM Builds WHERE finished = 1')/$(q 'SELECT count(*) FROM Builds') builds finished, $(wc -l <"$T/recorded.now") steps recorded, $(wc -l <"$COUNTER") builder runs"
}

round=1
submit_round $round
kills=0
# every third run names a crash point; the turn passes to the next point only once the
# named one has fired, so each point gets its chance however slow the runner is
turn=0
while [ $kills -lt "$KILLS" ]; do
    point=
    if [ $((kills % 3)) = 0 ]; then
        point=${CRASH_POINTS[$((turn % ${#CRASH_POINTS[@]}))]}
    fi
    one_run "$point"
    [ "$LAST_FIRED" = 0 ] || turn=$((turn + 1))
done
# points that have not fired yet get up to three more runs each (a short soak)
for p in "${CRASH_POINTS[@]}"; do
    for _ in 1 2 3; do
        [ "${FIRED[$p]:-0}" = 0 ] || break
        one_run "$p"
    done
done

# every named crash point was reached at least once
for p in "${CRASH_POINTS[@]}"; do
    echo "crash point $p: chosen ${CHOSEN[$p]:-0} times, fired ${FIRED[$p]:-0} times"
done
for p in "${CRASH_POINTS[@]}"; do
    [ "${FIRED[$p]:-0}" -gt 0 ] || fail "crash point $p never fired (chosen ${CHOSEN[$p]:-0} times)"
done

# finish uninterrupted (its start clears the rows the last kill left busy)
snapshot
cp "$T/recorded.now" "$T/recorded.prev"
cp "$T/counts.now" "$T/counts.prev"
timeout 600 "$SLUICE" run --once >>"$T/run.log" 2>&1 || fail "final run failed"
if [ -s "$T/busy.kill" ]; then
    old_busy_cleared || fail "the final run left rows of the last kill busy"
    BUSY_CHECKED=$((BUSY_CHECKED + 1))
fi
echo "restarts that found rows left busy (all cleared): $BUSY_CHECKED"
[ "$BUSY_CHECKED" -gt 0 ] || fail "no kill left a busy row: the busy check never ran"
snapshot
check_invariants final
[ "$(q 'SELECT count(*) FROM BuildSteps WHERE busy <> 0')" = 0 ] || fail "busy rows left"
[ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ] || fail "unfinished builds left"
bad=$(q "SELECT id, job, buildStatus FROM Builds WHERE
         (job = 'fails' AND buildStatus <> 1) OR (job = 'afterFail' AND buildStatus <> 2) OR
         (job NOT IN ('fails', 'afterFail') AND buildStatus <> 0)")
[ -z "$bad" ] || fail "builds with another status than an uninterrupted run gives: $bad"
echo "ok: $kills kills over $round round(s), $(q 'SELECT count(*) FROM Builds') builds"

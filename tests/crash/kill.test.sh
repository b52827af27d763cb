#!/usr/bin/env bash
# Crash safety: a CA-heavy workload (a 200-node content-addressed DAG, a failing CA job
# and a CA job depending on it) while the runner is killed with SIGKILL at random moments
# and at named crash points, restarted each time.  Runs in a private /nix (a mount
# namespace with an empty directory over /nix) so `nix-store --gc` touches only the
# test's own store.  After every kill:
#   - no BuildSteps row is busy once the runner has restarted (checked at the next start)
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
export SLUICE_LOG=1
CRASH_POINTS=(after-resolved-row before-resolved-root after-build inside-finish-tx)

q() { sqlite3 -batch "$DB" "$1"; }

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
    # derivations recorded at an earlier kill must not have run again since
    if [ -f "$T/recorded.prev" ]; then
        while read -r name; do
            before=$(awk -v n="$name" '$1 == n {print $2}' "$T/counts.prev")
            after=$(awk -v n="$name" '$1 == n {print $2}' "$T/counts.now")
            [ "${before:-0}" = "${after:-0}" ] ||
                fail "kill $it: $name ran again after its outputs were recorded ($before -> $after)"
        done <"$T/recorded.prev"
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

round=1
submit_round $round
kills=0
while [ $kills -lt "$KILLS" ]; do
    if [ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ]; then
        round=$((round + 1))
        submit_round $round
    fi
    snapshot
    cp "$T/recorded.now" "$T/recorded.prev"
    cp "$T/counts.now" "$T/counts.prev"
    point=
    if [ $((RANDOM % 3)) = 0 ]; then
        point=${CRASH_POINTS[$((RANDOM % ${#CRASH_POINTS[@]}))]}
    fi
    SLUICE_CRASH_POINT=$point "$SLUICE" run >>"$T/run.log" 2>&1 &
    pid=$!
    # the first thing a runner does is clearing busy rows: check them once it runs
    if [ -n "$point" ]; then
        for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    else
        sleep "$((RANDOM % 2)).$((RANDOM % 10))"
    fi
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    kills=$((kills + 1))
    snapshot
    check_invariants $kills
    echo "kill $kills ${point:+at $point }done: $(q 'SELECT count(*) FROM Builds WHERE finished = 1')/$(q 'SELECT count(*) FROM Builds') builds finished, $(wc -l <"$T/recorded.now") steps recorded, $(wc -l <"$COUNTER") builder runs"
done

# finish uninterrupted
snapshot
cp "$T/recorded.now" "$T/recorded.prev"
cp "$T/counts.now" "$T/counts.prev"
timeout 600 "$SLUICE" run --once >>"$T/run.log" 2>&1 || fail "final run failed"
snapshot
check_invariants final
[ "$(q 'SELECT count(*) FROM BuildSteps WHERE busy <> 0')" = 0 ] || fail "busy rows left"
[ "$(q 'SELECT count(*) FROM Builds WHERE finished = 0')" = 0 ] || fail "unfinished builds left"
bad=$(q "SELECT id, job, buildStatus FROM Builds WHERE
         (job = 'fails' AND buildStatus <> 1) OR (job = 'afterFail' AND buildStatus <> 2) OR
         (job NOT IN ('fails', 'afterFail') AND buildStatus <> 0)")
[ -z "$bad" ] || fail "builds with another status than an uninterrupted run gives: $bad"
echo "ok: $kills kills over $round round(s), $(q 'SELECT count(*) FROM Builds') builds"

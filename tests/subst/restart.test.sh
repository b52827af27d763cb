#!/usr/bin/env bash
# use-substitutes across restarts, on SQLite and PostgreSQL: the runner killed (SIGKILL)
# (a) right after a substitution, before anything was recorded, and (b) right after the
# type-1 rows were written, before the build was attached; a restarted runner finds the
# substituted paths valid (or substitutes them again), finishes the build, never builds
# what only the cached part needed, and writes no second type-1 row.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
source "$(dirname "$0")/lib.sh"

# killed_at POINT: sluice run --once with the crash point; it must die by SIGKILL
killed_at() {
    local r=0 log=$T/killed-$BACKEND-$1.log
    with_cache timeout 60 "$SLUICE" run --once --use-substitutes true --crash-point "$1" \
        >"$log" 2>&1 || r=$?
    [ $r -eq 137 ] || { tail -20 "$log" >&2; fail "$BACKEND: crash point $1: exit $r, not SIGKILL"; }
    grep -q "crash point '$1' reached" "$log" || fail "$BACKEND: crash point $1 not reached"
    KILLS=$((KILLS + 1))
}

KILLS=0
body() {
    local point id base=$SALT
    for point in substituted after-substitution-rows; do
        SALT=$base-$point
        CACHE=$T/cache-$BACKEND-$point
        submit_jobs "$FILE" top2
        label_attrs "$FILE" mid buildOnly runtime
        id=${ID[top2]}
        cache_put k1 mid
        killed_at "$point"
        assert_eq "$(build_row "$id")" "0||" "$BACKEND/$point: build after the kill"
        [ -e "$(out mid)" ] || fail "$BACKEND/$point: mid was not substituted before the kill"
        with_cache run_once --use-substitutes true
        assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND/$point: build row of top2"
        # never a second type-1 row; no row of mid built
        assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 0")" 1 \
            "$BACKEND/$point: built steps"
        case $point in
        substituted) want=0 ;; # killed before the row: found valid after the restart
        *) want=1 ;;
        esac
        assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 1")" "$want" \
            "$BACKEND/$point: type-1 rows"
        [ ! -e "$(out buildOnly)" ] || fail "$BACKEND/$point: buildOnly was built"
    done
}

for_backends body
[ "$KILLS" -gt 0 ] || fail "no crash point fired"

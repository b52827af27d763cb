#!/usr/bin/env bash
# use-substitutes: a build read in a later queue pass that needs a derivation the runner
# substituted earlier gets its type-1 row too, on SQLite and PostgreSQL (the cache made by
# real Nix in a separate store, tests/subst/lib.sh).  One runner: `top2` substitutes `mid`;
# once it finished, `top3` (which needs mid, valid by then) is submitted and read by a
# later pass: it gets one type-1 row for mid (status 0, mid's output, the substitution's
# own start and stop) and builds only itself.  Then, with a fresh salt, the runner is
# killed (SIGKILL) right after top3's row from memory was written: a restarted runner
# (which remembers nothing) finishes top3 with that one row, never a second.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
source "$(dirname "$0")/lib.sh"

finished() { [ "$(build_row "${ID[$1]}" | cut -d'|' -f1)" = 1 ]; }

# type-1 rows of build ID: "drv|status|startTime|stopTime|busy"
subst_rows() {
    q "SELECT drvPath, status, startTime, stopTime, busy FROM BuildSteps
       WHERE build = $1 AND type = 1 ORDER BY stepnr" | relabel
}

KILLS=0
body() {
    local base=$SALT r2 r3 rc
    CACHE=$T/cache-$BACKEND
    submit_jobs "$FILE" top2
    label_attrs "$FILE" mid buildOnly runtime
    cache_put k1 mid
    with_cache run_bg --use-substitutes true -v
    wait_until 60 finished top2 || fail "$BACKEND: top2 not finished: $(tail -20 "$RUN_LOG")"
    r2=$(subst_rows "${ID[top2]}")
    [ "$(cut -d'|' -f1,2,5 <<<"$r2")" = "mid|0|0" ] || fail "$BACKEND: type-1 rows of top2: '$r2'"
    # a later pass of the same runner: mid is valid now, the runner remembers it
    submit_jobs "$FILE" top3
    wait_until 60 finished top3 || fail "$BACKEND: top3 not finished: $(tail -20 "$RUN_LOG")"
    run_stop
    assert_eq "$(build_row "${ID[top3]}")" "1|0|0" "$BACKEND: build row of top3"
    r3=$(subst_rows "${ID[top3]}")
    assert_eq "$r3" "$r2" "$BACKEND: top3's type-1 row (drv|status|start|stop|busy) is mid's substitution"
    assert_eq "$(step_outputs "${ID[top3]}" "$(q "SELECT stepnr FROM BuildSteps WHERE build = ${ID[top3]} AND type = 1")")" \
        "out=$(out mid)" "$BACKEND: outputs of top3's type-1 row"
    assert_eq "$(step_rows "${ID[top3]}" | awk -F'|' '$2 == 0 { print $3 "|" $4 }')" "top3|0" \
        "$BACKEND: built steps of top3"
    [ ! -e "$(out buildOnly)" ] || fail "$BACKEND: buildOnly was built"

    # killed right after the row from memory was written; the restarted runner adds none
    SALT=$base-kill
    CACHE=$T/cache-$BACKEND-kill
    ID=()
    submit_jobs "$FILE" top2
    label_attrs "$FILE" mid buildOnly runtime
    cache_put k1 mid
    with_cache run_bg --use-substitutes true --crash-point after-remembered-rows
    wait_until 60 finished top2 || fail "$BACKEND: top2 not finished: $(tail -20 "$RUN_LOG")"
    submit_jobs "$FILE" top3
    rc=0
    wait "$RUN_PID" || rc=$?
    RUN_PID=
    [ $rc -eq 137 ] || fail "$BACKEND: the runner exited with $rc, not SIGKILL: $(tail -20 "$RUN_LOG")"
    grep -q "crash point 'after-remembered-rows' reached" "$RUN_LOG" || fail "$BACKEND: crash point not reached"
    KILLS=$((KILLS + 1))
    assert_eq "$(build_row "${ID[top3]}")" "0||" "$BACKEND: top3 after the kill"
    r2=$(subst_rows "${ID[top2]}")
    assert_eq "$(subst_rows "${ID[top3]}")" "$r2" "$BACKEND: top3's type-1 row before the restart"
    with_cache run_once --use-substitutes true
    assert_eq "$(build_row "${ID[top3]}")" "1|0|0" "$BACKEND: build row of top3 after the restart"
    assert_eq "$(subst_rows "${ID[top3]}")" "$r2" "$BACKEND: top3's type-1 rows after the restart"
    assert_eq "$(step_rows "${ID[top3]}" | awk -F'|' '$2 == 0 { print $3 "|" $4 }')" "top3|0" \
        "$BACKEND: built steps of top3 after the restart"
}

for_backends body
[ "$KILLS" -gt 0 ] || fail "no crash point fired"

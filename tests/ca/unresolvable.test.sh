#!/usr/bin/env bash
# tests/ca/unresolvable.test.sh: an input's output disappears while a CA drv waits to be
# resolved (pause point before-resolve; tests/ca/nix/unresolvable.nix), on SQLite and
# PostgreSQL.
#   1. a's rows, output (with sluice's root for it) and realisation are deleted while p
#      waits: a is built again (one rebuild), p resolves and builds; rows exactly
#      [a built, p status 13 -> p', p' built], build status 0, output equal to Nix's.
#   2. a's output taken away again after its rebuild: p fails with status 3 and
#      "cannot resolve P: no output 'out' of A" (one rebuild, no loop).
#   3. a's output and .drv gone: p fails at once with status 3 and that message; q (on p, another build) gets a propagated status-3 row and
#      status 3; nothing stays queued (no unfinished build, no busy row, the runner
#      goes idle: `sluice run --once` returns at once).
#   4. the outputs of both inputs a and b of r gone: each input is built again (one
#      rebuild each), then r resolves and builds (status 0, output equal to Nix's).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/unresolvable.nix
# every local daemon session ends after one use, so none holds a temporary GC root on
# a's output when the test deletes it
RUN_ARGS=(--local-daemon-max-steps 1)

pause_file() { echo "$SLUICE_STATE_DIR/pause/before-resolve"; }

# wait_pause DRV: the runner is paused before resolving DRV (other drvs go on: a
# resolves too, to itself)
wait_pause() {
    while :; do
        wait_until 40 test -e "$(pause_file)" || { tail -20 "$RUN_LOG" >&2; fail "$BACKEND $WHAT: no pause before resolving $1"; }
        [ "$(cat "$(pause_file)")" != "$1" ] || return 0
        rm -f "$(pause_file)"
        sleep 0.2
    done
}

# take_away_a: a's rows, sluice's root for its output, the output and its realisation
take_away_a() { take_away "$ADRV"; }
# take_away DRV: the same for any input
take_away() {
    local aout
    aout=$(q "SELECT o.path FROM BuildStepOutputs o JOIN BuildSteps s ON s.build = o.build AND
              s.stepnr = o.stepnr WHERE s.drvPath = '$1' AND s.status = 0")
    [ -n "$aout" ] || fail "$BACKEND $WHAT: $1 was not built"
    q "DELETE FROM BuildStepOutputs WHERE (build, stepnr) IN (SELECT build, stepnr FROM BuildSteps
       WHERE drvPath = '$1'); DELETE FROM BuildSteps WHERE drvPath = '$1';
       DELETE FROM sluice_gcroots WHERE path = '$aout'" >/dev/null
    rm -f "$SLUICE_STATE_DIR/roots/${aout##*/}"
    nix-store --delete --ignore-liveness "$aout" >"$T/delete.log" 2>&1 ||
        { cat "$T/delete.log" >&2; fail "$BACKEND $WHAT: cannot delete $aout"; }
    ! nix-store --check-validity "$aout" 2>/dev/null || fail "$BACKEND $WHAT: $aout still valid"
}

done_builds() { [ "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" = 0 ]; }

body() {
    local base=$SALT
    # 1. the output is gone: a is built again, then p
    WHAT=rebuild
    submit_jobs "$FILE" p
    label_attrs "$FILE" a
    ADRV=$(oracle_instantiate "$FILE" a)
    SLUICE_TEST_PAUSE=before-resolve run_bg "${RUN_ARGS[@]}"
    wait_pause "${DRV[p]}"
    take_away_a
    rm -f "$(pause_file)"
    wait_pause "${DRV[p]}" # again, after a's rebuild
    rm -f "$(pause_file)"
    wait_until 40 done_builds || fail "$BACKEND $WHAT: build not finished"
    run_stop
    oracle_build "${DRV[p]}"
    assert_eq "$(build_row "${ID[p]}")" "1|0|0" "$BACKEND $WHAT: build row"
    assert_eq "$(step_rows "${ID[p]}")" "1|0|a|0|||0|
2|0|p|13||p'|0|
3|0|p'|0|||0|" "$BACKEND $WHAT: steps"
    assert_eq "$(build_outputs "${ID[p]}")" "out=${ORACLE_OUT[${DRV[p]}!out]}" "$BACKEND $WHAT: output vs nix-store -r"
    grep -q "rebuilding the input first" "$RUN_LOG" || fail "$BACKEND $WHAT: no rebuild in the log"

    # 2. gone again after the rebuild: p fails (one rebuild only)
    WHAT=gone-again
    SALT=$base-again
    submit_jobs "$FILE" p
    label_attrs "$FILE" a
    ADRV=$(oracle_instantiate "$FILE" a)
    SLUICE_TEST_PAUSE=before-resolve run_bg "${RUN_ARGS[@]}"
    wait_pause "${DRV[p]}"
    take_away_a
    rm -f "$(pause_file)"
    wait_pause "${DRV[p]}"
    take_away_a
    rm -f "$(pause_file)"
    wait_until 40 done_builds || fail "$BACKEND $WHAT: build not finished"
    run_stop
    assert_eq "$(build_row "${ID[p]}")" "1|3|0" "$BACKEND $WHAT: build row"
    assert_eq "$(step_rows "${ID[p]}")" "1|0|p|3|||0|" "$BACKEND $WHAT: steps"
    assert_eq "$(q "SELECT errorMsg FROM BuildSteps WHERE build = ${ID[p]}")" \
        "cannot resolve ${DRV[p]}: no output 'out' of $ADRV" "$BACKEND $WHAT: errorMsg"

    # 4. both inputs of r gone: two rebuilds, one each (the second missing input is not
    # the same as the first: r does not fail)
    WHAT=two-gone
    SALT=$base-two
    submit_jobs "$FILE" r
    label_attrs "$FILE" a b
    ADRV=$(oracle_instantiate "$FILE" a)
    local bdrv
    bdrv=$(oracle_instantiate "$FILE" b)
    SLUICE_TEST_PAUSE=before-resolve run_bg "${RUN_ARGS[@]}"
    wait_pause "${DRV[r]}"
    take_away "$ADRV"
    take_away "$bdrv"
    rm -f "$(pause_file)"
    # r's later resolution attempts go on as they come
    local i
    for i in $(seq 400); do
        done_builds && break
        rm -f "$(pause_file)"
        sleep 0.1
    done
    done_builds || fail "$BACKEND $WHAT: build not finished"
    run_stop
    oracle_build "${DRV[r]}"
    assert_eq "$(build_row "${ID[r]}")" "1|0|0" "$BACKEND $WHAT: build row"
    assert_eq "$(step_rows "${ID[r]}" | cut -d'|' -f3-4 | sort)" "a|0
b|0
r'|0
r|13" "$BACKEND $WHAT: steps"
    assert_eq "$(build_outputs "${ID[r]}")" "out=${ORACLE_OUT[${DRV[r]}!out]}" "$BACKEND $WHAT: output vs nix-store -r"
    assert_eq "$(grep -c "rebuilding the input first" "$RUN_LOG")" 2 "$BACKEND $WHAT: rebuilds in the log"

    # 3. the .drv is gone too: p cannot be resolved
    WHAT=no-drv
    SALT=$base-nodrv
    submit_jobs "$FILE" p q
    label_attrs "$FILE" a
    ADRV=$(oracle_instantiate "$FILE" a)
    SLUICE_TEST_PAUSE=before-resolve run_bg "${RUN_ARGS[@]}"
    wait_pause "${DRV[p]}"
    take_away_a
    # a's .drv is still referenced by p's: take the file away, put it back afterwards
    cp -a "$ADRV" "$T/a.drv.saved"
    rm -f "$ADRV"
    rm -f "$(pause_file)"
    wait_until 40 done_builds || { cp -a "$T/a.drv.saved" "$ADRV"; fail "$BACKEND $WHAT: builds not finished"; }
    run_stop
    cp -a "$T/a.drv.saved" "$ADRV"
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds WHERE id IN (${ID[p]}, ${ID[q]}) ORDER BY id")" \
        "p|1|3|0
q|1|3|0" "$BACKEND $WHAT: build rows"
    assert_eq "$(step_rows "${ID[p]}")" "1|0|p|3|||0|" "$BACKEND $WHAT: steps of p"
    assert_eq "$(step_rows "${ID[q]}")" "1|0|p|3|p||0|" "$BACKEND $WHAT: steps of q"
    assert_eq "$(q "SELECT errorMsg FROM BuildSteps WHERE build = ${ID[p]}")" \
        "cannot resolve ${DRV[p]}: no output 'out' of $ADRV" "$BACKEND $WHAT: errorMsg"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "$BACKEND $WHAT: busy rows"
    local t0=$SECONDS
    run_once
    [ $((SECONDS - t0)) -lt 20 ] || fail "$BACKEND $WHAT: the runner did not go idle"
    SALT=$base
}

for_backends body
echo "PASS"

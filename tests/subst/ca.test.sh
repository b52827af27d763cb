#!/usr/bin/env bash
# use-substitutes for content-addressed derivations, on SQLite and PostgreSQL
# (tests/subst/nix/ca.nix): the cache made by real Nix in a separate store holds `caMid`
# with its realisation (`nix copy -f FILE caMid`); sluice looks it up through the realisation
# of the queued drv, substitutes it (a type-1 row in each build that needed it), builds
# only what is missing (`caOwn`, `caTop`, `iaOnCa`), never `caBuildOnly`, and the
# outputs equal a plain `nix-store -r` of the same drvs.  What no cache has is a miss,
# never a failure: sluice_substitution_misses_total counts the lookups that found nothing
# (the queued caTop, caOwn and iaOnCa at ingest, the resolved caTop' and iaOnCa' once
# resolved), sluice_substitutions_failed_total stays 0.  Three lone CA builds then tell
# a miss from a failure in one request: a hit, a miss (counted as one) and a truncated
# NAR (a failure, logged with Nix's reason, built instead).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
command -v curl >/dev/null || skip "curl not installed"
source "$(dirname "$0")/lib.sh"
FILE=$ROOT/tests/subst/nix/ca.nix

# metric PORT NAME: its value in the runner's /metrics
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
all_finished() {
    local a
    for a in "$@"; do
        [ "$(build_row "${ID[$a]}" | cut -d'|' -f1)" = 1 ] || return 1
    done
}

body() {
    local a id n p mid want port misses failed
    CACHE=$T/cache-$BACKEND
    submit_jobs "$FILE" caTop iaOnCa
    label_attrs "$FILE" caBuildOnly caMid caOwn
    oracle nix-store -r "$(drv_of caMid)" >/dev/null 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: oracle build of caMid"
    oracle nix copy --to "file://$CACHE?secret-key=$T/k1.sk&compression=none" \
        -f "$FILE" --argstr salt "$SALT" caMid 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: nix copy caMid"
    [ "$(ls "$CACHE/realisations" | wc -l)" -ge 1 ] || fail "$BACKEND: no realisation in the cache"

    port=$((20000 + RANDOM % 20000))
    with_cache run_bg -v --use-substitutes true --http "$port"
    wait_until 60 all_finished caTop iaOnCa || fail "$BACKEND: builds not finished: $(tail -20 "$RUN_LOG")"
    misses=$(metric "$port" sluice_substitution_misses_total)
    failed=$(metric "$port" sluice_substitutions_failed_total)
    run_stop
    for a in caTop iaOnCa; do
        assert_eq "$(build_row "${ID[$a]}")" "1|0|0" "$BACKEND: build row of $a"
    done
    # caMid substituted (read with caTop, the first build of the queue pass) and a type-1
    # row in both builds that needed it (iaOnCa, read in the next chunk, too); never a
    # built step of caMid or caBuildOnly
    for a in caTop iaOnCa; do
        id=${ID[$a]}
        n=$(q "SELECT stepnr FROM BuildSteps WHERE build = $id AND type = 1 AND status = 0")
        [ -n "$n" ] || fail "$BACKEND: no type-1 row in $a: $(step_rows "$id")"
        assert_eq "$(step_rows "$id" | awk -F'|' '$2 == 1 { print $3 }')" caMid \
            "$BACKEND: substituted in $a"
        mid=$(step_outputs "$id" "$n")
        ! step_rows "$id" | awk -F'|' '$2 == 0 { print $3 }' | grep -q -e "^caMid" -e "^caBuildOnly" ||
            fail "$BACKEND: caMid or caBuildOnly built in $a: $(step_rows "$id")"
    done
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE type = 1 AND drvPath = '$(drv_of caMid)'")" 2 \
        "$BACKEND: type-1 rows of caMid"
    # outputs equal a plain nix-store -r of the same drvs (the oracle builds everything)
    oracle_build "$(drv_of caMid)" "$(drv_of caTop)" "$(drv_of iaOnCa)"
    assert_eq "$mid" "out=${ORACLE_OUT[$(drv_of caMid)!out]}" "$BACKEND: caMid's output"
    for a in caTop iaOnCa; do
        assert_eq "$(build_outputs "${ID[$a]}")" "out=${ORACLE_OUT[$(drv_of "$a")!out]}" \
            "$BACKEND: output of $a"
    done
    # caBuildOnly's output: never made here
    p=$(oracle nix-store -r "$(drv_of caBuildOnly)" 2>>"$T/oracle-$BACKEND.log")
    [ ! -e "$p" ] || fail "$BACKEND: caBuildOnly was built ($p)"
    # one lookup per level for the content-addressed nodes too
    read -r n want <<<"$(pass_counts)"
    [ "${want:-0}" -ge 1 ] && [ "$want" -le "$n" ] ||
        fail "$BACKEND: $want substitution questions for $n levels"
    # the misses: each lookup that found nothing, queued (ingest) or resolved, none a failure
    assert_eq "$failed" 0 "$BACKEND: sluice_substitutions_failed_total"
    assert_eq "$(sed -nE 's/.*no cache has ([^ ]+) \(content-addressed lookup\).*/\1/p' "$RUN_LOG" | relabel | sort | paste -sd' ')" \
        "caOwn caTop caTop' iaOnCa iaOnCa'" "$BACKEND: the lookups no cache answered"
    assert_eq "$misses" 5 "$BACKEND: sluice_substitution_misses_total"

    # the resolved form: sluice itself builds caAfterIn (variant a) in the oracle's store
    # and publishes it with the realisations of the queued and the resolved drv; variant
    # b's queued drv is in no cache, its resolved drv is the same as a's
    CACHE=$T/cache2-$BACKEND
    SLUICE_STATE_DIR=$T/ostate-$BACKEND oracle "$SLUICE" build --store local --no-out-link \
        --store-uri "file://$CACHE?secret-key=$T/k1.sk&compression=none" "$FILE" \
        --argstr salt "$SALT" --argstr variant a -A caAfterIn >"$T/obuild-$BACKEND.log" 2>&1 ||
        fail "$BACKEND: sluice build in the oracle store: $(tail -3 "$T/obuild-$BACKEND.log")"
    id=$("$SLUICE" submit "$FILE" --argstr salt "$SALT" --argstr variant b -A caAfterIn) ||
        fail "$BACKEND: submit variant b"
    with_cache run_once -v --use-substitutes true
    # its top level found built once resolved: a cached build, as Hydra finishes it
    assert_eq "$(build_row "$id")" "1|0|1" "$BACKEND: build row of caAfterIn (b)"
    p=$(q "SELECT resolvedDrvPath FROM BuildSteps WHERE build = $id AND status = 13")
    [ -n "$p" ] || fail "$BACKEND: caAfterIn (b) was not resolved: $(step_rows "$id")"
    assert_eq "$(q "SELECT type || '|' || status FROM BuildSteps WHERE build = $id
                    AND drvPath LIKE '%$p'")" "1|0" "$BACKEND: the resolved drv substituted"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 0 AND status = 0")" 1 \
        "$BACKEND: built steps (caIn only)"
    grep -q "substituted .*$p!out" "$RUN_LOG" || fail "$BACKEND: no substitution of the resolved drv logged"

    # a hit, a miss and a truncated NAR: caLoneHit is read alone (the first chunk of the
    # pass), caLoneTrunc and caLoneMiss together (one request for the two)
    CACHE=$T/cache3-$BACKEND
    submit_jobs "$FILE" caLoneHit caLoneTrunc caLoneMiss
    for a in caLoneHit caLoneTrunc; do
        oracle nix-store -r "$(drv_of $a)" >/dev/null 2>>"$T/oracle-$BACKEND.log" ||
            fail "$BACKEND: oracle build of $a"
    done
    oracle nix copy --to "file://$CACHE?secret-key=$T/k1.sk&compression=none" \
        -f "$FILE" --argstr salt "$SALT" caLoneHit caLoneTrunc 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: nix copy caLoneHit caLoneTrunc"
    n=$(grep -l "ca-lone-trunc" "$CACHE"/*.narinfo) || fail "$BACKEND: caLoneTrunc not in the cache"
    n=$CACHE/$(sed -n 's/^URL: //p' "$n")
    truncate -s $(($(stat -c %s "$n") / 2)) "$n"
    port=$((20000 + RANDOM % 20000))
    with_cache run_bg -v --use-substitutes true --http "$port"
    wait_until 60 all_finished caLoneHit caLoneTrunc caLoneMiss ||
        fail "$BACKEND: lone builds not finished: $(tail -20 "$RUN_LOG")"
    misses=$(metric "$port" sluice_substitution_misses_total)
    failed=$(metric "$port" sluice_substitutions_failed_total)
    n=$(metric "$port" sluice_substitutions_total)
    run_stop
    assert_eq "$(build_row "${ID[caLoneHit]}")" "1|0|1" "$BACKEND: build row of caLoneHit (cached)"
    for a in caLoneTrunc caLoneMiss; do
        assert_eq "$(build_row "${ID[$a]}")" "1|0|0" "$BACKEND: build row of $a"
    done
    assert_eq "$(step_rows "${ID[caLoneHit]}" | cut -d'|' -f2-4)" "1|caLoneHit|0" "$BACKEND: steps of caLoneHit"
    assert_eq "$(step_rows "${ID[caLoneTrunc]}" | cut -d'|' -f2-4)" "0|caLoneTrunc|0" "$BACKEND: steps of caLoneTrunc"
    assert_eq "$(step_rows "${ID[caLoneMiss]}" | cut -d'|' -f2-4)" "0|caLoneMiss|0" "$BACKEND: steps of caLoneMiss"
    assert_eq "$misses|$failed|$n" "1|1|1" "$BACKEND: misses|failures|substitutions"
    grep "substituting $(drv_of caLoneTrunc) failed, building it instead" "$RUN_LOG" | grep -q "is incomplete" ||
        fail "$BACKEND: no failure logged for caLoneTrunc: $(grep -i substitut "$RUN_LOG" | head -5)"
    grep -q "no cache has $(drv_of caLoneMiss) " "$RUN_LOG" ||
        fail "$BACKEND: no miss logged for caLoneMiss: $(grep -i "no cache" "$RUN_LOG" | head -5)"
}

for_backends body

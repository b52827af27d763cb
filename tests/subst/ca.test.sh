#!/usr/bin/env bash
# use-substitutes for content-addressed derivations, on SQLite and PostgreSQL
# (tests/subst/nix/ca.nix): the cache made by real Nix in a separate store holds `caMid`
# with its realisation (`nix copy -f FILE caMid`); sluice looks it up through the realisation
# of the queued drv, substitutes it (a type-1 row in each build that needed it), builds
# only what is missing (`caOwn`, `caTop`, `iaOnCa`), never `caBuildOnly`, and the
# outputs equal a plain `nix-store -r` of the same drvs.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
source "$(dirname "$0")/lib.sh"
FILE=$ROOT/tests/subst/nix/ca.nix

body() {
    local a id n p mid want
    CACHE=$T/cache-$BACKEND
    submit_jobs "$FILE" caTop iaOnCa
    label_attrs "$FILE" caBuildOnly caMid caOwn
    oracle nix-store -r "$(drv_of caMid)" >/dev/null 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: oracle build of caMid"
    oracle nix copy --to "file://$CACHE?secret-key=$T/k1.sk&compression=none" \
        -f "$FILE" --argstr salt "$SALT" caMid 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: nix copy caMid"
    [ "$(ls "$CACHE/realisations" | wc -l)" -ge 1 ] || fail "$BACKEND: no realisation in the cache"

    with_cache run_once -v --use-substitutes true
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
}

for_backends body

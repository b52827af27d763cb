#!/usr/bin/env bash
# tests/ca/shared.test.sh: one CA drv p (tests/ca/nix/shared.nix) shared by several builds
# as a dependency and as the top level, on SQLite and PostgreSQL.  Asserts the rows of
# the resolution rules exactly:
#   - every build whose top level is p gets one status-13 row for p (written directly,
#     never busy), builds that only need p get none;
#   - one step for p': its type-0 row in the lowest-id build whose top level is p; the
#     other build with top level p gets a type-1 status-0 row for p' and isCachedBuild 1;
#   - when no build has p as its top level, the lowest-id build needing p gets the
#     status-13 row and p''s row;
#   - killed right after the status-13 rows committed, the next runner reuses them: no
#     second status-13 row, p' built once;
#   - Hydra's "restart build" of a build holding a status-13 row, after p''s output was
#     deleted: p' is built again in that build, still with its one status-13 row;
#   - Builds.drvPath never changes; outputs equal nix-store -r's in a separate store.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/shared.nix

# rows K EXPECTED: the step rows of build ID[K]
rows() { assert_eq "$(step_rows "${ID[$1]}")" "$2" "$BACKEND $WHAT: steps of $1"; }
brow() { assert_eq "$(build_row "${ID[$1]}")" "$2" "$BACKEND $WHAT: build row of $1"; }

# outputs of builds K... equal Nix's for their drv, and valid
outputs_ok() {
    local k d exp
    for k in "$@"; do
        d=${DRV[$k]}
        exp="out=${ORACLE_OUT[$d!out]:-}"
        [ "$exp" != "out=" ] || fail "$BACKEND $WHAT: Nix did not build $k"
        assert_eq "$(build_outputs "${ID[$k]}")" "$exp" "$BACKEND $WHAT: outputs of $k vs nix-store -r"
        nix-store --check-validity "${exp#out=}" || fail "$BACKEND $WHAT: output of $k not valid"
    done
}

common_checks() {
    local k
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND $WHAT: unfinished builds"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "$BACKEND $WHAT: busy rows"
    for k in "${!ID[@]}"; do
        assert_eq "$(q "SELECT drvPath FROM Builds WHERE id = ${ID[$k]}")" "${DRV[$k]}" \
            "$BACKEND $WHAT: Builds.drvPath of $k"
    done
}

fresh() {
    SALT=$BASE_SALT-$1
    WHAT=$1
    ID=() DRV=()
    q "DELETE FROM BuildStepOutputs; DELETE FROM BuildSteps; DELETE FROM BuildOutputs;
       DELETE FROM Builds" >/dev/null
}

body() {
    BASE_SALT=$SALT

    # p as the top level of two builds and a dependency of two others
    fresh top-and-dep
    submit_jobs "$FILE" top p1=p p2=p deferred
    label_attrs "$FILE" base
    run_once
    oracle_build "${DRV[top]}" "${DRV[p1]}" "${DRV[deferred]}"
    common_checks
    rows top "1|0|base|0|||0|
2|0|top|13||top'|0|
3|0|top'|0|||0|"
    rows p1 "1|0|p|13||p'|0|
2|0|p'|0|||0|"
    rows p2 "1|0|p|13||p'|0|
2|1|p'|0|||0|"
    rows deferred "1|0|deferred|13||deferred'|0|
2|0|deferred'|0|||0|"
    brow top "1|0|0"
    brow p1 "1|0|0"
    brow p2 "1|0|1"
    brow deferred "1|0|0"
    assert_eq "$(step_outputs "${ID[p1]}" 1)" "out=" "$BACKEND $WHAT: outputs of p's status-13 row"
    outputs_ok top p1 p2 deferred

    # p only a dependency: the lowest-id build needing it gets its rows
    fresh dep-only
    submit_jobs "$FILE" deferred top
    label_attrs "$FILE" base p
    run_once
    oracle_build "${DRV[top]}" "${DRV[deferred]}"
    common_checks
    rows deferred "1|0|base|0|||0|
2|0|p|13||p'|0|
3|0|p'|0|||0|
4|0|deferred|13||deferred'|0|
5|0|deferred'|0|||0|"
    rows top "1|0|top|13||top'|0|
2|0|top'|0|||0|"
    brow deferred "1|0|0"
    brow top "1|0|0"
    outputs_ok deferred top

    # killed right after the status-13 rows committed: the next runner keeps them
    fresh crash
    submit_jobs "$FILE" p1=p p2=p top
    label_attrs "$FILE" base
    local r
    r=$(bash -c '"$@" >"$0" 2>&1; echo $?' "$T/crash-$BACKEND.log" \
        env SLUICE_CRASH_POINT=after-resolved-row timeout 60 "$SLUICE" run --once 2>/dev/null)
    [ $r -eq 137 ] || { tail "$T/crash-$BACKEND.log" >&2; fail "$BACKEND $WHAT: no crash (exit $r)"; }
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE status = 13")" 2 "$BACKEND $WHAT: status-13 rows at the crash"
    run_once
    oracle_build "${DRV[p1]}" "${DRV[top]}"
    common_checks
    rows p1 "1|0|base|0|||0|
2|0|p|13||p'|0|
3|0|p'|0|||0|"
    rows p2 "1|0|p|13||p'|0|
2|1|p'|0|||0|"
    rows top "1|0|top|13||top'|0|
2|0|top'|0|||0|"
    brow p1 "1|0|0"
    brow p2 "1|0|1"
    outputs_ok p1 p2 top

    # Hydra's "restart build" of p2 after p''s output is gone (with what refers to it:
    # top' and its output): p' is built again for p2, which keeps its one status-13 row
    local pout
    pout=$(q "SELECT path FROM BuildOutputs WHERE build = ${ID[p2]}")
    nix-store --delete --ignore-liveness $(nix-store -q --referrers-closure "$pout") >/dev/null 2>&1 ||
        fail "$BACKEND $WHAT: cannot delete $pout"
    ! nix-store --check-validity "$pout" 2>/dev/null || fail "$BACKEND $WHAT: $pout still valid"
    hydra_restart "${ID[p2]}"
    run_once
    WHAT=restart
    common_checks
    rows p2 "1|0|p|13||p'|0|
2|1|p'|0|||0|
3|0|p'|0|||0|"
    brow p2 "1|0|0"
    outputs_ok p2
    SALT=$BASE_SALT
}

for_backends body
echo "PASS"

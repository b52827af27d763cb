#!/usr/bin/env bash
# tests/ca/early-cutoff.test.sh: early cutoff (tests/ca/nix/early-cutoff.nix) on SQLite
# and PostgreSQL, twice: all four builds queued together, and the second chain queued
# only after the first one finished (where Hydra builds P' a second time).  Asserts:
# both upstreams built (status 0 rows) with the same output path; each downstream build
# has exactly one status-13 row, both with the same resolvedDrvPath, the drv Nix 2.8
# resolves them to; P' built exactly once (one type-0 status-0 row in all builds), in
# one downstream build (isCachedBuild 0); the other downstream build has a type-1,
# status-0 row for P' (machine '') and isCachedBuild 1; outputs equal to nix-store -r's
# in a separate store; `sluice steps` of the second build shows the resolution and its
# type-1 row.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/early-cutoff.nix

# check_cutoff: the rows of the four builds in ID[]
check_cutoff() {
    local what=$1 rp first second exp j up
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND $what: unfinished builds"
    for j in upstream1 upstream2; do
        assert_eq "$(build_row "${ID[$j]}")" "1|0|0" "$BACKEND $what: build row of $j"
        assert_eq "$(step_rows "${ID[$j]}")" "1|0|$j|0|||0|" "$BACKEND $what: steps of $j"
    done
    up=$(build_outputs "${ID[upstream1]}")
    assert_eq "$(build_outputs "${ID[upstream2]}")" "$up" "$BACKEND $what: upstream outputs differ"
    assert_eq "$up" "out=${ORACLE_OUT[${DRV[upstream1]}!out]}" "$BACKEND $what: upstream output vs Nix"

    rp=${ORACLE_RESOLVED[${DRV[downstream1]}]:-}
    [ -n "$rp" ] || fail "$BACKEND $what: Nix did not resolve downstream1"
    assert_eq "${ORACLE_RESOLVED[${DRV[downstream2]}]:-}" "$rp" "$BACKEND $what: Nix's resolutions differ"
    assert_eq "$(q "SELECT DISTINCT resolvedDrvPath FROM BuildSteps WHERE status = 13")" "${rp##*/}" \
        "$BACKEND $what: resolvedDrvPath"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE drvPath = '$rp' AND type = 0 AND status = 0")" 1 \
        "$BACKEND $what: type-0 rows of P'"
    first=$(q "SELECT b.job FROM BuildSteps s JOIN Builds b ON b.id = s.build
               WHERE s.drvPath = '$rp' AND s.type = 0")
    case $first in
    downstream1) second=downstream2 ;;
    downstream2) second=downstream1 ;;
    *) fail "$BACKEND $what: P' ran for '$first'" ;;
    esac
    rp=$(relabel <<<"$rp")
    assert_eq "$(step_rows "${ID[$first]}")" "1|0|$first|13||$rp|0|
2|0|$rp|0|||0|" "$BACKEND $what: steps of $first (P' built)"
    assert_eq "$(step_rows "${ID[$second]}")" "1|0|$second|13||$rp|0|
2|1|$rp|0|||0|" "$BACKEND $what: steps of $second (P' shared)"
    assert_eq "$(build_row "${ID[$first]}")" "1|0|0" "$BACKEND $what: build row of $first"
    assert_eq "$(build_row "${ID[$second]}")" "1|0|1" "$BACKEND $what: build row of $second"
    exp="out=${ORACLE_OUT[${DRV[downstream1]}!out]}"
    assert_eq "$exp" "out=${ORACLE_OUT[${DRV[downstream2]}!out]}" "$BACKEND $what: Nix's downstream outputs"
    for j in downstream1 downstream2; do
        assert_eq "$(build_outputs "${ID[$j]}")" "$exp" "$BACKEND $what: outputs of $j"
        assert_eq "$(step_outputs "${ID[$j]}" 1)" "out=" "$BACKEND $what: outputs of the status-13 row of $j"
        assert_eq "$(step_outputs "${ID[$j]}" 2)" "$exp" "$BACKEND $what: outputs of P' in $j"
    done
    nix-store --check-validity "${exp#out=}" || fail "$BACKEND $what: output not valid"
    sl steps "${ID[$second]}"
    assert_eq "$(relabel <<<"$out")" "step  type  status                 derivation
1     build resolved               $second
      -> resolved to $rp (step 2)
2     subst succeeded              $rp" "$BACKEND $what: sluice steps of $second"
    echo "$BACKEND $what: P' built for $first, shared with $second"
}

body() {
    local base=$SALT
    # together: both downstreams resolve while P' is queued or running (or just built)
    submit_jobs "$FILE" upstream1 upstream2 downstream1 downstream2
    run_once
    oracle_build "${DRV[@]}"
    check_cutoff together

    # one after the other: P' is built already when downstream2 resolves
    SALT=$base-seq
    ID=() DRV=()
    q "DELETE FROM BuildStepOutputs; DELETE FROM BuildSteps; DELETE FROM BuildOutputs;
       DELETE FROM Builds" >/dev/null
    submit_jobs "$FILE" upstream1 downstream1
    run_once
    assert_eq "$(build_row "${ID[downstream1]}")" "1|0|0" "$BACKEND seq: downstream1"
    submit_jobs "$FILE" upstream2 downstream2
    run_once
    oracle_build "${DRV[@]}"
    check_cutoff sequential
    SALT=$base
}

for_backends body
echo "PASS"

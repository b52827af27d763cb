#!/usr/bin/env bash
# tests/ca/suite.test.sh: the ten content-addressed jobs of tests/ca/nix/content-addressed.nix
# (Hydra's content-addressed suite in spirit), queued together and run once, on SQLite
# and PostgreSQL.  Asserts, per build: finished, buildStatus (fails 1,
# succeed_with_failed 6, caDependingOnFailingCA 2, the rest 0), isCachedBuild 0; the exact
# BuildSteps rows (a status-13 row, written directly, for every resolved top level, with
# the resolved drv that real Nix 2.8 resolves to and NULL output paths, and no
# step_started notification; one type-0 row for
# the resolved drv; the failure propagated to caDependingOnFailingCA, which is never
# resolved); BuildOutputs and step outputs equal to what `nix-store -r` builds for the
# same drvs in a separate store, and valid; FailedPaths keyed by the failed drv; the
# resolved drvs GC-rooted; the realisations of P and P' registered in the local store as
# Nix registers them (same ids, paths and dependent realisations).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/content-addressed.nix
# dependency order: a build's own top level is always read before builds that need it
JOBS=(empty_dir fails caRewrite succeed_with_failed caDependingOnCA caDependingOnCADependingOnCA
    caDependingOnFailingCA nonCaDependingOnCA multiOutput caRewriteMulti)
RESOLVED=(caDependingOnCA caDependingOnCADependingOnCA nonCaDependingOnCA multiOutput caRewriteMulti)
FAILED=(fails caDependingOnFailingCA)

declare -A STATUS=([fails]=1 [succeed_with_failed]=6 [caDependingOnFailingCA]=2)

body() {
    local j d n o p exp valid=()
    submit_jobs "$FILE" "${JOBS[@]}"
    for j in "${JOBS[@]}"; do
        o=$(build_outputs "${ID[$j]}")
        for p in $o; do
            case $j:$p in
            nonCaDependingOnCA:out=) ;;                 # deferred: unknown until resolved
            *:*=) ;;                                    # floating CA
            *) fail "$BACKEND: $j: BuildOutputs at submit: $p" ;;
            esac
        done
    done

    listen_start
    run_once
    listen_stop
    oracle_build "${DRV[@]}"
    [ ${#ORACLE_RESOLVED[@]} -eq ${#RESOLVED[@]} ] ||
        fail "$BACKEND: Nix resolved ${#ORACLE_RESOLVED[@]} drvs, expected ${#RESOLVED[@]}"

    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND: unfinished builds"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "$BACKEND: busy rows"
    exp=$(for j in "${JOBS[@]}"; do echo "$j|1|${STATUS[$j]:-0}|0"; done)
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds ORDER BY id")" "$exp" \
        "$BACKEND: build rows"

    # step_started for the steps that ran, none for status-13 or propagated rows
    assert_eq "$(steps_started)" "$(q "SELECT build || ' ' || stepnr FROM BuildSteps WHERE type = 0
        AND status <> 13 AND propagatedFrom IS NULL" | sort)" "$BACKEND: step_started notifications"

    # exact step rows
    for j in empty_dir caRewrite succeed_with_failed; do
        assert_eq "$(step_rows "${ID[$j]}")" "1|0|$j|0|||0|" "$BACKEND: steps of $j"
    done
    assert_eq "$(step_rows "${ID[fails]}")" "1|0|fails|1|||0|" "$BACKEND: steps of fails"
    for j in "${RESOLVED[@]}"; do
        exp="1|0|$j|13||$j'|0|
2|0|$j'|0|||0|"
        assert_eq "$(step_rows "${ID[$j]}")" "$exp" "$BACKEND: steps of $j"
        # the status-13 row: every output of P with a NULL path
        exp=$(q "SELECT name || '=' FROM BuildOutputs WHERE build = ${ID[$j]} ORDER BY name")
        assert_eq "$(step_outputs "${ID[$j]}" 1)" "$exp" "$BACKEND: outputs of the status-13 row of $j"
    done
    assert_eq "$(step_rows "${ID[caDependingOnFailingCA]}")" "1|0|fails|1|fails||0|" \
        "$BACKEND: steps of caDependingOnFailingCA"
    q "SELECT errorMsg FROM BuildSteps WHERE build = ${ID[fails]}" | grep -q 'failed with exit code 1' ||
        fail "$BACKEND: errorMsg of the failed step"

    # outputs: equal to Nix's, valid, on the builds and on their last step
    for j in "${JOBS[@]}"; do
        d=${DRV[$j]}
        case " ${FAILED[*]} " in
        *" $j "*)
            assert_eq "$(build_outputs "${ID[$j]}")" "out=" "$BACKEND: outputs of failed $j"
            continue
            ;;
        esac
        exp=$(for k in "${!ORACLE_OUT[@]}"; do
            if [ "${k%!*}" = "$d" ]; then echo "${k##*!}=${ORACLE_OUT[$k]}"; fi
        done | sort)
        [ -n "$exp" ] || fail "$BACKEND: Nix built no outputs for $j"
        assert_eq "$(build_outputs "${ID[$j]}")" "$exp" "$BACKEND: BuildOutputs of $j vs nix-store -r"
        n=$(q "SELECT max(stepnr) FROM BuildSteps WHERE build = ${ID[$j]}")
        assert_eq "$(step_outputs "${ID[$j]}" "$n")" "$exp" "$BACKEND: step outputs of $j"
        for p in $exp; do valid+=("${p#*=}"); done
    done
    nix-store --check-validity "${valid[@]}" || fail "$BACKEND: outputs not valid in the local store"
    [ -e "$(q "SELECT path FROM BuildOutputs WHERE build = ${ID[succeed_with_failed]}")/nix-support/failed" ] ||
        fail "$BACKEND: succeed_with_failed has no nix-support/failed"

    # FailedPaths: the failed CA drv (it resolves to itself)
    assert_eq "$(q "SELECT path FROM FailedPaths")" "${DRV[fails]}" "$BACKEND: FailedPaths"

    # every resolved drv was rooted
    for d in "${ORACLE_RESOLVED[@]}"; do
        assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE kind = 'resolved' AND path = '$d'")" 1 \
            "$BACKEND: GC root of $(relabel <<<"$d")"
        [ -e "$d" ] || fail "$BACKEND: $d missing from the store"
    done

    # realisations: what Nix registers in its own store, sluice registers in the local one
    # (same ids, output paths and dependent realisations)
    [ ${#ORACLE_REAL[@]} -ge 10 ] || fail "$BACKEND: the oracle reported ${#ORACLE_REAL[@]} realisations"
    assert_eq "$(store_realisations "${!ORACLE_REAL[@]}")" "$(oracle_realisations)" "$BACKEND: realisations"
    echo "$BACKEND: ${#JOBS[@]} builds, ${#ORACLE_REAL[@]} realisations checked"
}

for_backends body
echo "PASS"

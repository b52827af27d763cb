#!/usr/bin/env bash
# tests/ca/cached-failure.test.sh: cached failures of CA drvs (tests/ca/nix/cached-failure.nix)
# on SQLite and PostgreSQL: f (resolves to itself) and g (resolves to g') fail; FailedPaths
# holds f and g' (keyed by the resolved drv).  Queued again in new builds, both fail at
# once as cached failures (a status-8 row, build status 1, isCachedBuild 1, nothing
# built, no busy row).  After Hydra's "restart build" of those builds, both are built
# again (and fail again, status 1).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/cached-failure.nix

body() {
    local gp
    submit_jobs "$FILE" f1=f g1=g
    label_attrs "$FILE" base
    run_once
    oracle_build "${DRV[f1]}" "${DRV[g1]}"
    gp=${ORACLE_RESOLVED[${DRV[g1]}]:-}
    [ -n "$gp" ] || fail "$BACKEND: Nix did not resolve g"
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds ORDER BY id")" "f|1|1|0
g|1|1|0" "$BACKEND: first builds"
    assert_eq "$(step_rows "${ID[f1]}")" "1|0|f|1|||0|" "$BACKEND: steps of the first f"
    assert_eq "$(step_rows "${ID[g1]}")" "1|0|base|0|||0|
2|0|g|13||g'|0|
3|0|g'|1|||0|" "$BACKEND: steps of the first g"
    assert_eq "$(q "SELECT path FROM FailedPaths ORDER BY path" | relabel | sort)" "f
g'" "$BACKEND: FailedPaths"

    # queued again: cached failures at once
    submit_jobs "$FILE" f2=f g2=g
    run_once
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds WHERE id IN (${ID[f2]}, ${ID[g2]}) ORDER BY id")" \
        "f|1|1|1
g|1|1|1" "$BACKEND: cached failures"
    assert_eq "$(step_rows "${ID[f2]}")" "1|0|f|8|||0|" "$BACKEND: steps of the cached f"
    assert_eq "$(step_rows "${ID[g2]}")" "1|0|g|13||g'|0|
2|0|g|8|||0|" "$BACKEND: steps of the cached g"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "$BACKEND: busy rows"

    # Hydra's restart: built again
    hydra_restart "${ID[f2]}" "${ID[g2]}"
    run_once
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds WHERE id IN (${ID[f2]}, ${ID[g2]}) ORDER BY id")" \
        "f|1|1|0
g|1|1|0" "$BACKEND: restarted builds"
    assert_eq "$(step_rows "${ID[f2]}")" "1|0|f|8|||0|
2|0|f|1|||0|" "$BACKEND: steps of the restarted f"
    assert_eq "$(step_rows "${ID[g2]}")" "1|0|g|13||g'|0|
2|0|g|8|||0|
3|0|g'|1|||0|" "$BACKEND: steps of the restarted g"
    assert_eq "$(q "SELECT path FROM FailedPaths ORDER BY path" | relabel | sort)" "f
g'" "$BACKEND: FailedPaths after the restart"
}

for_backends body
echo "PASS"

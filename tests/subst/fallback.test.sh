#!/usr/bin/env bash
# use-substitutes: a failed substitution whose derivation turns out to need a known
# failure, on SQLite and PostgreSQL.  `onFragile` needs `side` (in no cache) and
# `fragile`, which the cache has with its NAR cut short; fragile needs `failIn`, whose
# output is in FailedPaths.  The build is attached (side may start) while fragile is
# being substituted; the substitution fails, the walk of what fragile needs finds the
# cached failure, and the build fails at ingest as it would have without the overlap:
# finished, a cached failure of failIn, fragile never built; nothing is left waiting (the
# runner's --once run ends) and the failure is logged.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
source "$(dirname "$0")/lib.sh"

body() {
    local id p n
    CACHE=$T/cache-$BACKEND
    submit_jobs "$FILE" onFragile
    label_attrs "$FILE" fragile failIn side
    cache_put k1 fragile
    p=$(out fragile)
    n=$(sed -n 's/^URL: //p' "$CACHE/${p:11:32}.narinfo")
    truncate -s $(($(stat -c %s "$CACHE/$n") / 2)) "$CACHE/$n"
    q "INSERT INTO FailedPaths (path) VALUES ('$(out failIn)')" >/dev/null
    with_cache run_once -v --use-substitutes true
    id=${ID[onFragile]}
    echo "$BACKEND: rows of onFragile:"
    step_rows "$id"
    assert_eq "$(build_row "$id" | cut -d'|' -f1,2)" "1|2" "$BACKEND: build row of onFragile (finished, a dependency failed)"
    assert_eq "$(step_rows "$id" | awk -F'|' '$3 == "failIn" { print $2 "|" $4 }')" "0|8" \
        "$BACKEND: failIn's row (a cached failure)"
    ! step_rows "$id" | awk -F'|' '{ print $3 }' | grep -qx fragile ||
        fail "$BACKEND: a row of fragile: $(step_rows "$id")"
    grep "substituting $(drv_of fragile) failed, building it instead" "$RUN_LOG" | grep -q "is incomplete" ||
        fail "$BACKEND: no fallback logged for fragile"
    grep -q "build $id failed at ingest" "$RUN_LOG" || fail "$BACKEND: no ingest failure logged: $(tail -20 "$RUN_LOG")"
    # (a NAR cut short may leave an invalid file behind: validity is what counts)
    ! nix-store --check-validity "$(out fragile)" 2>/dev/null || fail "$BACKEND: fragile was built"
    ! nix-store --check-validity "$(out failIn)" 2>/dev/null || fail "$BACKEND: failIn was built"
}

for_backends body

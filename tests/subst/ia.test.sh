#!/usr/bin/env bash
# use-substitutes on SQLite and PostgreSQL, with a file:// cache made by real Nix in a
# separate store (`nix copy --to file://...?secret-key=...`) as the local store's
# substituter (tests/subst/nix/graph.nix): sluice builds only what is missing; `mid`
# is substituted (a type-1 row, status 0, its outputs, start and stop) and `buildOnly`,
# which only `mid` needed, is never built; `badsig` (signed by a key nobody trusts) and
# `truncated` (its NAR cut short) are built instead, never a failure; outputs equal a
# plain `nix-store -r` of the same drvs; one substitution question per level of the
# walk.  Then a second build needing `mid`, read by a restarted runner, finds it valid
# (no second type-1 row: the runner remembers nothing of the first).  Then top levels in
# the cache: `truncated` alone is built once its substitution failed; `mid` (a cached
# build) and `top2`, which needs it, are read together: mid is substituted once, each
# build gets its type-1 row, and top2 waits for it.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"

source "$(dirname "$0")/lib.sh"

body() {
    local a id rows n p
    CACHE=$T/cache-$BACKEND
    submit_jobs "$FILE" top
    label_attrs "$FILE" buildOnly runtime mid own badsig truncated
    # the cache: mid (with runtime, its reference) and truncated signed by k1, badsig by k2
    cache_put k1 mid truncated
    cache_put k2 badsig
    p=$(out truncated)
    n=$(sed -n 's/^URL: //p' "$CACHE/${p:11:32}.narinfo")
    truncate -s $(($(stat -c %s "$CACHE/$n") / 2)) "$CACHE/$n"
    for a in mid runtime truncated badsig; do
        [ -e "$CACHE/$(out $a | cut -c12-43).narinfo" ] || fail "$BACKEND: $a not in the cache"
    done

    with_cache run_once -v --use-substitutes true --max-substitution-jobs 2
    # one question per level of the walk, for all its paths: top; mid, own, badsig and
    # truncated (badsig's and truncated's inputs, walked when they fell back: none)
    assert_eq "$(pass_counts)" "2 2" "$BACKEND: levels walked, substitution questions"
    id=${ID[top]}
    assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND: build row of top"
    rows=$(step_rows "$id" | cut -d'|' -f2-4 | sort)
    assert_eq "$rows" "$(printf '%s\n' "0|badsig|0" "0|own|0" "0|top|0" "0|truncated|0" "1|mid|0" | sort)" \
        "$BACKEND: steps (type|drv|status)"
    # the type-1 row: the outputs, a start and a stop
    n=$(q "SELECT stepnr FROM BuildSteps WHERE build = $id AND type = 1")
    assert_eq "$(step_outputs "$id" "$n")" "out=$(out mid)" "$BACKEND: outputs of the type-1 row"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 1
                    AND startTime > 0 AND stopTime >= startTime AND busy = 0")" 1 \
        "$BACKEND: start and stop of the type-1 row"
    # buildOnly was never built; mid and runtime came from the cache
    [ ! -e "$(out buildOnly)" ] || fail "$BACKEND: buildOnly was built"
    for a in mid runtime; do
        [ -e "$(out $a)" ] || fail "$BACKEND: $a is not in the store"
    done
    # the failed substitutions were logged with Nix's reason (and built)
    grep "substituting $(drv_of truncated) failed, building it instead" "$RUN_LOG" |
        grep -q "is incomplete" ||
        fail "$BACKEND: no fallback logged for truncated: $(grep -i substitut "$RUN_LOG" | head -5)"
    grep "substituting $(drv_of badsig) failed, building it instead" "$RUN_LOG" |
        grep -q "not signed by any of the keys" ||
        fail "$BACKEND: no fallback logged for badsig: $(grep -i substitut "$RUN_LOG" | head -5)"
    # one question per level of the walk: top; mid own badsig truncated; badsig's and
    # truncated's inputs (none: no question)
    # outputs equal a plain nix-store -r of the same drv
    p=$(oracle nix-store -r "$(drv_of top)" 2>>"$T/oracle-$BACKEND.log") || fail "$BACKEND: oracle top"
    assert_eq "$(build_outputs "$id")" "out=$p" "$BACKEND: top's output path"
    assert_eq "$(nix-store -q --hash "$p")" "$(oracle nix-store -q --hash "$p")" "$BACKEND: top's content"
    assert_eq "$(cat "$p")" "$(oracle cat "/nix/store/${p#/nix/store/}" 2>/dev/null || cat "$ORACLE/store/${p#/nix/store/}")" \
        "$BACKEND: top's text"

    # a second build needing mid: found valid, no type-1 row of its own, nothing built twice
    submit_jobs "$FILE" top2
    with_cache run_once --use-substitutes true
    assert_eq "$(build_row "${ID[top2]}")" "1|0|0" "$BACKEND: build row of top2"
    assert_eq "$(step_rows "${ID[top2]}" | cut -d'|' -f2-4)" "0|top2|0" "$BACKEND: steps of top2"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE type = 1")" 1 "$BACKEND: type-1 rows"

    # top levels in the cache (chunks of the pass: truncated; then mid and top2)
    SALT=$SALT-tops
    CACHE=$T/cache-$BACKEND-tops
    ID=()
    submit_jobs "$FILE" truncated mid top2
    label_attrs "$FILE" buildOnly runtime
    cache_put k1 mid truncated
    p=$(out truncated)
    n=$(sed -n 's/^URL: //p' "$CACHE/${p:11:32}.narinfo")
    truncate -s $(($(stat -c %s "$CACHE/$n") / 2)) "$CACHE/$n"
    with_cache run_once -v --use-substitutes true
    assert_eq "$(build_row "${ID[truncated]}")" "1|0|0" "$BACKEND: build row of truncated (a top level)"
    assert_eq "$(step_rows "${ID[truncated]}" | cut -d'|' -f2-4)" "0|truncated|0" "$BACKEND: steps of truncated"
    grep "substituting $(drv_of truncated) failed, building it instead" "$RUN_LOG" | grep -q "is incomplete" ||
        fail "$BACKEND: no fallback logged for the top level truncated"
    assert_eq "$(build_row "${ID[mid]}")" "1|0|1" "$BACKEND: build row of mid (cached)"
    assert_eq "$(step_rows "${ID[mid]}" | cut -d'|' -f2-4)" "1|mid|0" "$BACKEND: steps of mid"
    assert_eq "$(build_row "${ID[top2]}")" "1|0|0" "$BACKEND: build row of top2"
    assert_eq "$(step_rows "${ID[top2]}" | cut -d'|' -f2-4 | sort)" "$(printf '%s\n' "0|top2|0" "1|mid|0")" \
        "$BACKEND: steps of top2"
    assert_eq "$(q "SELECT count(DISTINCT startTime || ' ' || stopTime) FROM BuildSteps
                    WHERE type = 1 AND drvPath = '$(drv_of mid)'")" 1 "$BACKEND: one substitution of mid"
    assert_eq "$(grep -c "substituting $(drv_of mid) failed" "$RUN_LOG")" 0 "$BACKEND: mid's substitution failed"
    [ ! -e "$(out buildOnly)" ] || fail "$BACKEND: buildOnly was built"
}

for_backends body

#!/usr/bin/env bash
# use-substitutes runs in parallel with building the same queue pass, on SQLite and
# PostgreSQL: `both` needs `slowMid`, which is in a slow binary cache (nginx answering one
# request a second, tests/harness/nginx.sh; the cache made by real Nix with `nix copy`,
# slowMid with the four paths it refers to), and `quick`, which no cache has.  `quick`'s
# step starts while slowMid is being substituted (its BuildSteps startTime is before the
# stopTime of slowMid's type-1 row), and `both` waits for the substitution: it starts only
# after it ended.  Outputs and rows as without the overlap.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
command -v nginx >/dev/null || skip "nginx not installed"
command -v curl >/dev/null || skip "curl not installed"
source "$(dirname "$0")/lib.sh"

eval "$(NGINX_RATE=1r/s bash "$ROOT/tests/harness/nginx.sh" start "$T/nginx")"
overlap_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "overlap_rc=\$?; bash '$ROOT/tests/harness/nginx.sh' stop '$T/nginx'; (exit \$overlap_rc); $overlap_prev_trap" EXIT

with_slow_cache() {
    NIX_CONFIG="$NIX_CONFIG
substituters = $NGINX_URL/$BACKEND
trusted-public-keys = $(cat "$T/k1.pk")" "$@"
}

done_both() { [ "$(build_row "${ID[both]}")" = "1|0|0" ]; }

# the start and stop time of the one row of build ID matching type T and drv label L
row_times() {
    q "SELECT startTime || ' ' || stopTime FROM BuildSteps WHERE build = $1 AND type = $2
       AND drvPath = '$(drv_of "$3")'"
}

body() {
    local id qs qe ss se bs be
    CACHE=$NGINX_DIR/root/$BACKEND
    submit_jobs "$FILE" both
    label_attrs "$FILE" slowMid quick
    cache_put k1 slowMid
    [ "$(ls "$CACHE"/*.narinfo | wc -l)" -eq 5 ] || fail "$BACKEND: slowMid and its four parts not in the cache"
    with_slow_cache run_bg -v --use-substitutes true
    wait_until 120 done_both || fail "$BACKEND: both not finished: $(tail -20 "$RUN_LOG")"
    run_stop
    id=${ID[both]}
    assert_eq "$(step_rows "$id" | cut -d'|' -f2-4 | sort)" \
        "$(printf '%s\n' "0|both|0" "0|quick|0" "1|slowMid|0" | sort)" "$BACKEND: steps (type|drv|status)"
    read -r ss se <<<"$(row_times "$id" 1 slowMid)"
    read -r qs qe <<<"$(row_times "$id" 0 quick)"
    read -r bs be <<<"$(row_times "$id" 0 both)"
    echo "$BACKEND: slowMid substituted $ss-$se, quick built $qs-$qe, both built $bs-$be"
    # the cache was slow enough to tell (one request a second: at least five NARs)
    [ $((se - ss)) -ge 3 ] || fail "$BACKEND: the substitution took $((se - ss)) s: the cache was not slow"
    [ "$qs" -lt "$se" ] ||
        fail "$BACKEND: quick's step started at $qs, not before slowMid's substitution ended ($se)"
    [ "$bs" -ge "$se" ] || fail "$BACKEND: both started at $bs, before slowMid was substituted ($se)"
    grep -q "substituting .* failed" "$RUN_LOG" && fail "$BACKEND: a substitution failed: $(grep "substituting" "$RUN_LOG")"
    [ -e "$(out slowMid)" ] || fail "$BACKEND: slowMid is not in the store"
    assert_eq "$(build_outputs "$id")" "out=$(out both)" "$BACKEND: both's output"
}

for_backends body

#!/usr/bin/env bash
# `sluice run --build-one BUILD`, as Hydra's tests run Hydra's runner, on SQLite and
# PostgreSQL: only that build is loaded and built (another queued build is left alone,
# without step rows); the runner exits 0 once it is finished, whatever its status (a
# failed build too), 1 when its own step fails transiently (Hydra's runner exits rather
# than retry; the build stays queued, no busy row) and for a build that does not exist;
# a finished build is nothing to do (0); a bad id is a usage error (2).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

body() {
    local ids one other failed fod
    mapfile -t ids < <(submit -A mid -A empty -A fail -A fodFlaky)
    [ "${#ids[@]}" = 4 ] || fail "$BACKEND: submit: ${ids[*]}"
    one=${ids[0]} other=${ids[1]} failed=${ids[2]} fod=${ids[3]}

    sl run --build-one "$one"
    assert_eq "$rc" 0 "$BACKEND: --build-one of a succeeding build ($err)"
    assert_eq "$(build_row "$one")" "1|0|0" "$BACKEND: the build"
    assert_eq "$(build_row "$other")" "0||" "$BACKEND: the other queued build is left alone"
    assert_eq "$(step_rows "$other")" "" "$BACKEND: no step rows for the other build"

    sl run --build-one "$failed"
    assert_eq "$rc" 0 "$BACKEND: --build-one of a failing build ($err)"
    assert_eq "$(build_row "$failed")" "1|1|0" "$BACKEND: the failed build"

    sl run --build-one "$fod"
    assert_eq "$rc" 1 "$BACKEND: --build-one of a build failing transiently"
    grep -q "not retried with --build-one" <<<"$err" || fail "$BACKEND: message: $err"
    assert_eq "$(build_row "$fod")" "0||" "$BACKEND: the build stays queued"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $fod")" 1 "$BACKEND: one attempt"

    sl run --build-one "$one"
    assert_eq "$rc" 0 "$BACKEND: a finished build: nothing to do ($err)"
    sl run --build-one 999999
    assert_eq "$rc" 1 "$BACKEND: no such build"
    grep -q "build 999999 does not exist" <<<"$err" || fail "$BACKEND: message: $err"
    sl run --build-one x
    assert_eq "$rc" 2 "$BACKEND: a bad id"
    assert_eq "$(build_row "$other")" "0||" "$BACKEND: the other build is still queued"
}

for_backends body
echo "build-one: ok"

#!/usr/bin/env bash
# Failure propagation, cached failures and restarts, on SQLite and PostgreSQL
# (hydra-behaviour §3.2, §3.9, §3.12):
#  - a failing dependency shared by two builds: it runs once (in the lower build id),
#    both builds get status 2, each has its own status-1 row for the failed drv, the
#    other one with propagatedFrom = the build that ran it; FailedPaths gets its output;
#  - cached failures at ingest: a third dependent build gets 2 and a top-level build of
#    the failed drv gets 1, both with isCachedBuild = 1 and one status-8 row
#    (propagatedFrom = the latest build with a status-1 row); nothing is dispatched and
#    no build ever gets status 8;
#  - a restart (as Hydra's web UI does it) while no runner runs: the next `run` clears
#    the FailedPaths entries at start-up and builds it for real;
#  - a restart while `sluice run` runs (builds_restarted): cleared and rebuilt, the old
#    rows kept and no longer in the way; a restarted build gets build_started again
#    when its top-level step runs (as Hydra's runner sends it).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

out_path() { nix-store -q --outputs "$(drv_of "$1")"; }
restart() {
    q "UPDATE Builds SET finished = 0, buildStatus = NULL WHERE id = $1" >/dev/null
}
count_events() { events | grep -cx "$1" || true; }

body() {
    local a b c top2 flaky_top
    listen_start

    # --- a failing dependency shared by two builds
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A depA -A depB -k
    assert_eq "$rc" 100 "$BACKEND: build depA depB: exit status"
    a=$(q "SELECT id FROM Builds WHERE job = 'depA'")
    b=$(q "SELECT id FROM Builds WHERE job = 'depB'")
    [ "$a" -lt "$b" ] || fail "$BACKEND: ids $a $b"
    grep -q "error: build $a (dependency failed): .*-flaky.drv: failed" <<<"$err" || fail "$BACKEND: report: $err"
    grep -q "error: build $b (dependency failed): .*-flaky.drv: failed" <<<"$err" || fail "$BACKEND: report: $err"
    assert_eq "$(build_row "$a")" "1|2|0" "$BACKEND: depA"
    assert_eq "$(build_row "$b")" "1|2|0" "$BACKEND: depB"
    assert_eq "$(step_rows "$a")" "1|0|flaky|0|1|0|" "$BACKEND: depA rows (ran the step)"
    assert_eq "$(step_rows "$b")" "1|0|flaky|0|1|$a|" "$BACKEND: depB rows (propagated)"
    local fl
    fl=$(q "SELECT drvPath FROM BuildSteps WHERE build = $a")
    assert_eq "$(q "SELECT path FROM FailedPaths")" "$(nix-store -q --outputs "$fl")" "$BACKEND: FailedPaths"
    assert_eq "$(q "SELECT $(is 'stopTime >= startTime'), $(is 'notificationPendingSince = stopTime'),
                    coalesce(size, -1) FROM Builds WHERE id IN ($a, $b) ORDER BY id")" \
        "$(printf '1|1|-1\n1|1|-1')" "$BACKEND: failed builds' times and sizes"
    assert_eq "$(count_events "build_finished $a $b")" 1 "$BACKEND: build_finished $a with its dependent $b"

    # --- cached failures: a new dependent (2) and the failed drv as a top level (1)
    mapfile -t ids < <(submit -A depC -A flaky -A flaky2)
    c=${ids[0]} flaky_top=${ids[1]} top2=${ids[2]}
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once: exit status"
    assert_eq "$(build_row "$c")" "1|2|1" "$BACKEND: depC is a cached dependency failure"
    assert_eq "$(step_rows "$c")" "1|0|flaky|0|8|$b|" "$BACKEND: depC rows"
    assert_eq "$(build_row "$flaky_top")" "1|1|1" "$BACKEND: flaky is a cached failure"
    assert_eq "$(step_rows "$flaky_top")" "1|0|flaky|0|8|$b|" "$BACKEND: flaky rows"
    assert_eq "$(q "SELECT $(is 'startTime = stopTime'), $(is 'notificationPendingSince = stopTime')
                    FROM Builds WHERE id = $c")" "1|1" "$BACKEND: depC times"
    # flaky2 failed for real (not cached)
    assert_eq "$(build_row "$top2")" "1|1|0" "$BACKEND: flaky2"
    assert_eq "$(step_rows "$top2")" "1|0|flaky2|0|1|0|" "$BACKEND: flaky2 rows"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths")" 2 "$BACKEND: FailedPaths: flaky and flaky2"
    assert_eq "$(count_events "build_started $c")$(count_events "build_started $flaky_top")" 00 \
        "$BACKEND: no build_started for cached failures"
    assert_eq "$(count_events "build_finished $c")$(count_events "build_finished $flaky_top")" 11 \
        "$BACKEND: build_finished for cached failures"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE drvPath = '$fl' AND status IS NOT NULL AND status <> 8")" 2 \
        "$BACKEND: the cached failure was not dispatched again"

    # --- restart while no runner runs: cleared at start-up, built for real
    touch "$DIR/ok"
    sleep 1 # rows of the restarted run start after the old stopTime
    restart "$c"
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once after a restart: exit status"
    assert_eq "$(build_row "$c")" "1|0|0" "$BACKEND: restarted depC succeeded"
    assert_eq "$(step_rows "$c")" "$(printf '1|0|flaky|0|8|%s|\n2|0|flaky|0|0|0|\n3|0|dep-c|0|0|0|' "$b")" \
        "$BACKEND: restarted depC rows"
    assert_eq "$(q "SELECT path FROM FailedPaths")" "$(out_path "$top2")" "$BACKEND: flaky's FailedPaths entry is gone"
    assert_eq "$(out_of "$c")" "$(nix_out_of "$c")" "$BACKEND: depC outputs"
    assert_eq "$(count_events "build_started $c")" 1 "$BACKEND: build_started for the restarted depC"

    # --- restarts while the runner runs (builds_restarted)
    run_bg
    touch "$DIR/ok2"
    restart "$top2"
    wait_until 30 build_is "$top2" "1|0|0" || fail "$BACKEND: restarted flaky2: $(build_row "$top2")"
    assert_eq "$(step_rows "$top2")" "$(printf '1|0|flaky2|0|1|0|\n2|0|flaky2|0|0|0|')" "$BACKEND: flaky2 rows"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths")" 0 "$BACKEND: FailedPaths empty"
    assert_eq "$(count_events "build_started $top2")" 2 "$BACKEND: build_started again for the restarted flaky2"
    # depA's flaky is built now: only dep-a runs
    restart "$a"
    wait_until 30 build_is "$a" "1|0|0" || fail "$BACKEND: restarted depA: $(build_row "$a")"
    assert_eq "$(step_rows "$a")" "$(printf '1|0|flaky|0|1|0|\n2|0|dep-a|0|0|0|')" "$BACKEND: depA rows"
    # as Hydra's runner: build_started when the top level (dep-a) runs, which it did not
    # in the first run (its dependency failed)
    assert_eq "$(count_events "build_started $a")" 1 "$BACKEND: build_started for the restarted depA"
    run_stop
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE buildStatus = 8")" 0 "$BACKEND: no build has status 8"
    listen_stop
}

for_backends body

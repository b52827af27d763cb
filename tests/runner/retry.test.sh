#!/usr/bin/env bash
# Transient failures (a failed fixed-output build: Nix's TransientFailure), on SQLite and
# PostgreSQL (hydra-behaviour §3.9):
#  - `sluice build` retries once after 5 s: two rows (status 3, then 1), the build 1,
#    no FailedPaths entry for a transient failure;
#  - the retry count comes from the database: a runner stopped while a step waits for
#    its retry, started again, makes only the attempts that are left (max-retries 3:
#    three rows in all, spaced by the retry interval);
#  - a restarted build runs again (its old attempt rows do not count) and succeeds;
#  - builds are loaded in priority order: a build submitted later with a higher global
#    priority is built first.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

attempts() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND status IS NOT NULL")" = "$2" ]; }
order() { [ -e "$DIR/order" ] && tr '\n' ' ' <"$DIR/order" | sed 's/ $//'; }

body() {
    local id gap r
    # --- sluice build: one retry after 5 s
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A fodFlaky
    assert_eq "$rc" 100 "$BACKEND: build fodFlaky: exit status"
    id=$(q "SELECT max(id) FROM Builds")
    assert_eq "$(build_row "$id")" "1|1|0" "$BACKEND: fodFlaky"
    assert_eq "$(step_rows "$id")" "$(printf '1|0|fod-flaky|0|3|0|\n2|0|fod-flaky|0|1|0|')" "$BACKEND: fodFlaky rows"
    gap=$(q "SELECT (SELECT startTime FROM BuildSteps WHERE build = $id AND stepnr = 2) -
                    (SELECT stopTime FROM BuildSteps WHERE build = $id AND stepnr = 1)")
    [ "$gap" -ge 5 ] && [ "$gap" -le 8 ] || fail "$BACKEND: retry after $gap s, expected 5"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths")" 0 "$BACKEND: no FailedPaths for a transient failure"

    # --- the retry count survives a restart of the runner
    local opts=(--max-retries 3 --retry-interval 2 --retry-backoff 1)
    id=$(submit -A fodFlaky2)
    run_bg "${opts[@]}"
    wait_until 20 attempts "$id" 1 || fail "$BACKEND: no first attempt: $(step_rows "$id")"
    run_stop
    assert_eq "$(step_rows "$id")" "1|0|fod-flaky2|0|3|0|" "$BACKEND: first attempt"
    sl run --once "${opts[@]}"
    assert_eq "$rc" 0 "$BACKEND: run --once: exit status"
    assert_eq "$(step_rows "$id")" "$(printf '1|0|fod-flaky2|0|3|0|\n2|0|fod-flaky2|0|3|0|\n3|0|fod-flaky2|0|1|0|')" \
        "$BACKEND: three attempts in all"
    assert_eq "$(build_row "$id")" "1|1|0" "$BACKEND: fodFlaky2 failed"
    gap=$(q "SELECT (SELECT startTime FROM BuildSteps WHERE build = $id AND stepnr = 3) -
                    (SELECT stopTime FROM BuildSteps WHERE build = $id AND stepnr = 2)")
    [ "$gap" -ge 2 ] || fail "$BACKEND: third attempt $gap s after the second, expected 2"

    # --- restarted: runs again and succeeds
    touch "$DIR/fixed2"
    sleep 1
    q "UPDATE Builds SET finished = 0, buildStatus = NULL WHERE id = $id" >/dev/null
    sl run --once "${opts[@]}"
    assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND: restarted fodFlaky2"
    assert_eq "$(step_rows "$id" | tail -1)" "4|0|fod-flaky2|0|0|0|" "$BACKEND: restarted fodFlaky2 row"
    assert_eq "$(out_of "$id")" "$(nix_out_of "$id")" "$BACKEND: fodFlaky2 output"

    # --- builds are loaded in priority order
    submit -A orderA >/dev/null
    submit --global-priority 5 -A orderB >/dev/null
    sl run --once --max-jobs 1
    assert_eq "$(order)" "order-b order-a" "$BACKEND: the build with the higher global priority first"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
}

for_backends body

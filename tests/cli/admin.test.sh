#!/usr/bin/env bash
# The operator's commands on SQLite and PostgreSQL, asserted in the rows and in the
# notifications Hydra's web server causes with the same changes:
#  - `sluice restart BUILD` queues a finished build again (finished 0, isCachedBuild 0)
#    and clears the cached failures of its outputs -> builds_restarted;
#  - `sluice cancel BUILD` -> status 4 (cancelled), builds_cancelled;
#  - `sluice bump [--priority N] BUILD` -> globalPriority N or now, builds_bumped;
#  - `sluice clear-failed [DRV|PATH...]` deletes FailedPaths rows (given or all);
#  - errors: no such build, a finished build cancelled, a queued one restarted (exit 1);
#  - `builds --json`, `steps --json`, `status --json` with status names;
#  - `sluice log BUILD` of a running build shows the running step, `log -f` follows it
#    to its end and exits by itself.
source "$(dirname "$0")/../harness/env.sh"
source "$ROOT/tests/runner/lib.sh"

ADMIN_CHANNELS=(builds_restarted builds_cancelled builds_bumped)
admin_listen() {
    case $URL in
    sqlite:*) ;;
    *)
        ADMIN_OUT=$T/admin-listen-$BACKEND.out
        {
            printf 'LISTEN %s;\n' "${ADMIN_CHANNELS[@]}"
            while :; do printf 'SELECT 1;\n'; sleep 0.1; done
        } | psql -X -q -A -t -d "$URL" >"$ADMIN_OUT" 2>&1 &
        ADMIN_PID=$!
        BG_PIDS+=("$ADMIN_PID")
        sleep 0.5
        ;;
    esac
}
# the admin notifications so far, one channel a line
admin_events() {
    case $URL in
    sqlite:*)
        q "SELECT channel FROM sluice_events WHERE channel IN ('builds_restarted',
           'builds_cancelled', 'builds_bumped') ORDER BY id"
        ;;
    *)
        sleep 0.5
        sed -nE 's/^Asynchronous notification "([a-z_]+)".*/\1/p' "$ADMIN_OUT"
        ;;
    esac
}
step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }

body() {
    local ok bad gate broken_out t0 lp
    mapfile -t ids < <(submit -A empty -A fail)
    ok=${ids[0]} bad=${ids[1]}
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once"
    assert_eq "$(build_row "$bad")" "1|1|0" "$BACKEND: the failing build"
    broken_out=$(out_of "$bad")
    assert_eq "$(q "SELECT count(*) FROM FailedPaths WHERE path = '$broken_out'")" 1 \
        "$BACKEND: the failure is cached"

    phase "--json views with status names"
    sl builds --json
    assert_eq "$(jq -r ".[] | select(.id == $bad) | [.status, .buildstatus, .finished] | @tsv" <<<"$out")" \
        "failed	1	true" "$BACKEND: builds --json (failed)"
    assert_eq "$(jq -r ".[] | select(.id == $ok) | .status" <<<"$out")" "succeeded" "$BACKEND: builds --json (ok)"
    sl steps --json "$bad"
    assert_eq "$(jq -r '.[0] | [.stepnr, .type, .state, .status] | @tsv' <<<"$out")" "1	build	failed	1" \
        "$BACKEND: steps --json"
    sl status --json
    assert_eq "$(jq -r '[.buildsFinished, .buildsFailed, .stepsRunning] | @tsv' <<<"$out")" "2	1	0" \
        "$BACKEND: status --json"

    phase "restart, cancel, bump"
    admin_listen
    sl restart "$bad"
    assert_eq "$rc" 0 "$BACKEND: restart ($err)"
    grep -q "build $bad: queued again (1 cached failures cleared)" <<<"$out" || fail "$BACKEND: restart said: $out"
    assert_eq "$(q "SELECT finished, isCachedBuild FROM Builds WHERE id = $bad")" "0|0" "$BACKEND: restarted row"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths")" 0 "$BACKEND: cached failure cleared by restart"
    sl restart "$bad"
    assert_eq "$rc" 1 "$BACKEND: restart of a queued build"
    grep -q "is not finished" <<<"$err" || fail "$BACKEND: restart of a queued build said: $err"
    sl bump --priority 7 "$bad"
    assert_eq "$rc" 0 "$BACKEND: bump --priority ($err)"
    assert_eq "$(q "SELECT globalPriority FROM Builds WHERE id = $bad")" 7 "$BACKEND: bumped priority"
    t0=$(date +%s)
    sl bump "$bad"
    lp=$(q "SELECT globalPriority FROM Builds WHERE id = $bad")
    [ "$lp" -ge "$t0" ] && [ "$lp" -le $((t0 + 5)) ] || fail "$BACKEND: bump without --priority gave $lp, not now"
    sl cancel "$bad"
    assert_eq "$rc" 0 "$BACKEND: cancel ($err)"
    assert_eq "$(build_row "$bad")" "1|4|0" "$BACKEND: cancelled row"
    sl cancel "$bad"
    assert_eq "$rc" 1 "$BACKEND: cancel of a finished build"
    sl cancel 999999
    assert_eq "$rc" 1 "$BACKEND: cancel of no build"
    grep -q "no build 999999" <<<"$err" || fail "$BACKEND: cancel of no build said: $err"
    sl cancel abc
    assert_eq "$rc" 2 "$BACKEND: cancel of a bad id"
    assert_eq "$(admin_events | tr '\n' ' ')" \
        "builds_restarted builds_bumped builds_bumped builds_cancelled " "$BACKEND: notifications"

    phase "clear-failed"
    q "INSERT INTO FailedPaths (path) VALUES ('/nix/store/00000000000000000000000000000000-a')" >/dev/null
    q "INSERT INTO FailedPaths (path) VALUES ('/nix/store/00000000000000000000000000000000-b')" >/dev/null
    q "INSERT INTO FailedPaths (path) VALUES ('$broken_out')" >/dev/null
    sl clear-failed "$(drv_of "$bad")"
    assert_eq "$out" "1 cached failure cleared" "$BACKEND: clear-failed DRV"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths WHERE path = '$broken_out'")" 0 "$BACKEND: the drv's output cleared"
    sl clear-failed /nix/store/00000000000000000000000000000000-a
    assert_eq "$out" "1 cached failure cleared" "$BACKEND: clear-failed PATH"
    sl clear-failed
    assert_eq "$out" "1 cached failure cleared" "$BACKEND: clear-failed (all)"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths")" 0 "$BACKEND: none left"
    sl clear-failed not-a-path
    assert_eq "$rc" 2 "$BACKEND: clear-failed of a bad argument"

    phase "log of a running build, log -f"
    gate=$(submit -A gate)
    run_bg
    wait_until 30 step_busy "$gate" 30 || fail "$BACKEND: gate is not building"
    wait_until 10 eval '"$SLUICE" log "$gate" 2>/dev/null | grep -q "gate $SALT: waiting"' ||
        fail "$BACKEND: log BUILD of a running build"
    sl status --json
    assert_eq "$(jq -r ".running[] | select(.build == $gate) | .phase" <<<"$out")" "building" \
        "$BACKEND: status --json running phase"
    "$SLUICE" log -f "$gate" >"$T/follow-$BACKEND" 2>&1 &
    lp=$!
    sleep 1
    kill -0 $lp 2>/dev/null || fail "$BACKEND: log -f ended while the step runs: $(cat "$T/follow-$BACKEND")"
    touch "$DIR/go"
    wait_until 20 eval '! kill -0 '$lp' 2>/dev/null' || fail "$BACKEND: log -f did not end with the step"
    wait $lp || fail "$BACKEND: log -f exit status"
    grep -q "gate $SALT: waiting" "$T/follow-$BACKEND" || fail "$BACKEND: log -f output: $(cat "$T/follow-$BACKEND")"
    assert_eq "$(build_row "$gate")" "1|0|0" "$BACKEND: gate built"
    run_stop
}
for_backends body
echo "admin commands checked"

#!/usr/bin/env bash
# The runner's commands, on SQLite and PostgreSQL:
#  - `run --once` on an empty queue stops at once;
#  - `sluice build` while `sluice run` runs: it submits, follows its builds through the
#    database, prints the output path (as nix-store -r gives it) and exits 0, or 100 for
#    a failed build (also from another state directory, told by the database's lock:
#    PostgreSQL's advisory lock, SQLite's lock file of the database); `sluice builds`
#    and `sluice steps` list them;
#  - a slow build seen while it runs: busy phase 30 (building) in BuildSteps, `sluice
#    status` lists it, `sluice log BUILD STEP` shows the log streamed so far;
#  - SIGTERM during that build: `run` stops promptly with exit 0, the builder is gone,
#    no busy row is left (the row is status 3, "interrupted"), the build stays queued;
#    SIGINT stops an idle runner the same way; the next `run --once` builds it (the
#    interrupted attempt is not counted as a failure);
#  - with ca-derivations off in the local store (NIX_CONFIG), a content-addressed build
#    fails clearly and at once (status 9, a message naming ca-derivations), it does
#    not hang.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

runner_ready() { grep -q "machine(s) loaded" "$RUN_LOG"; }
step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }
log_has() { "$SLUICE" log "$1" "$2" 2>/dev/null | grep -qx "$3"; }
builder_gone() { ! pgrep -f "$1" >/dev/null; }

body() {
    local t0 id gate r
    # --- an empty queue
    t0=$SECONDS
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once on an empty queue: exit status"
    [ $((SECONDS - t0)) -lt 15 ] || fail "$BACKEND: run --once on an empty queue took $((SECONDS - t0)) s"

    # --- sluice build while sluice run runs
    run_bg
    wait_until 20 runner_ready || fail "$BACKEND: runner did not start: $(cat "$RUN_LOG")"
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A empty
    assert_eq "$rc" 0 "$BACKEND: build beside a runner: exit status ($err)"
    grep -q "following the builds through the database" <<<"$err" || fail "$BACKEND: build did not follow: $err"
    id=$(q "SELECT max(id) FROM Builds")
    assert_eq "$out" "$(nix_out_of "$id")" "$BACKEND: build beside a runner: output path"
    assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND: built by the runner"
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A fail
    assert_eq "$rc" 100 "$BACKEND: failing build beside a runner: exit status (as nix-build)"
    id=$(q "SELECT max(id) FROM Builds")
    grep -q "error: build $id (failed): .*-broken.drv: failed" <<<"$err" || fail "$BACKEND: failure report: $err"
    # from another state directory: the database's lock tells (PostgreSQL's advisory
    # lock, the lock of the SQLite file); a build with status 6 (failed output) counts
    # as built
    SLUICE_STATE_DIR=$T/elsewhere sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A failedOutput
    assert_eq "$rc" 0 "$BACKEND: build from another state directory: exit status ($err)"
    grep -Eq "(advisory lock|runner-lock held) .* following the builds through the database" <<<"$err" ||
        fail "$BACKEND: build from another state directory did not follow: $err"
    assert_eq "$out" "$(nix_out_of "$(q "SELECT max(id) FROM Builds")")" "$BACKEND: failedOutput path"
    assert_eq "$(build_row "$(q "SELECT max(id) FROM Builds")")" "1|6|0" "$BACKEND: failedOutput"
    sl builds
    grep -Eq "^$id +failed +fail /nix/store/" <<<"$out" || fail "$BACKEND: sluice builds: $out"
    grep -Eq "^$((id - 1)) +succeeded +empty /nix/store/" <<<"$out" || fail "$BACKEND: sluice builds: $out"
    sl steps "$id"
    assert_eq "$(sed -n 2p <<<"$out" | tr -s ' ' | cut -d' ' -f1-4)" "1 build failed /nix/store/$(q "SELECT drvPath FROM BuildSteps WHERE build = $id" | cut -c12-)" \
        "$BACKEND: sluice steps"

    # --- a slow build, watched while it runs, then SIGTERM
    gate=$(submit -A gate)
    wait_until 30 step_busy "$gate" 30 || fail "$BACKEND: gate is not building: $(step_rows "$gate")"
    sl status
    grep -q "steps running:   1" <<<"$out" || fail "$BACKEND: status: $out"
    grep -q "build $gate step 1: .*-gate.drv on localhost, building" <<<"$out" || fail "$BACKEND: status: $out"
    wait_until 10 log_has "$gate" 1 "gate $SALT: waiting" || fail "$BACKEND: log of a running step"
    t0=$SECONDS
    kill -TERM "$RUN_PID"
    r=0
    wait "$RUN_PID" || r=$?
    RUN_PID=
    assert_eq "$r" 0 "$BACKEND: run after SIGTERM: exit status"
    [ $((SECONDS - t0)) -lt 15 ] || fail "$BACKEND: SIGTERM took $((SECONDS - t0)) s"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows after SIGTERM"
    assert_eq "$(step_rows "$gate")" "1|0|gate|0|3|0|" "$BACKEND: the interrupted row"
    assert_eq "$(q "SELECT errorMsg FROM BuildSteps WHERE build = $gate")" "step interrupted: the runner stopped" \
        "$BACKEND: the interrupted row's message"
    assert_eq "$(q "SELECT finished, coalesce(buildStatus, -1) FROM Builds WHERE id = $gate")" "0|-1" \
        "$BACKEND: the build stays queued"
    wait_until 10 builder_gone "gate $SALT: waiting" || fail "$BACKEND: the builder still runs"

    # --- SIGINT stops an idle runner
    run_bg
    wait_until 20 runner_ready || fail "$BACKEND: runner did not start"
    # it picks the gate build up again: wait for it, then interrupt
    wait_until 30 step_busy "$gate" 30 || fail "$BACKEND: gate is not building again"
    kill -INT "$RUN_PID"
    r=0
    wait "$RUN_PID" || r=$?
    RUN_PID=
    assert_eq "$r" 0 "$BACKEND: run after SIGINT: exit status"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows after SIGINT"

    # --- the next run builds it; interrupted attempts are not failures
    touch "$DIR/go"
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once after the interruptions: exit status"
    assert_eq "$(build_row "$gate")" "1|0|0" "$BACKEND: gate built"
    assert_eq "$(step_rows "$gate")" "$(printf '1|0|gate|0|3|0|\n2|0|gate|0|3|0|\n3|0|gate|0|0|0|')" \
        "$BACKEND: gate rows"
    assert_eq "$(out_of "$gate")" "$(nix_out_of "$gate")" "$BACKEND: gate output"

    # --- ca-derivations off: a CA build fails clearly, it does not hang
    id=$(submit -A ca)
    t0=$SECONDS
    r=0
    NIX_CONFIG=$(grep -v experimental-features <<<"$NIX_CONFIG"; echo 'experimental-features = nix-command') \
        timeout 60 "$SLUICE" run --once >"$T/ca-off.log" 2>&1 || r=$?
    assert_eq "$r" 0 "$BACKEND: run --once without ca-derivations: exit status ($(cat "$T/ca-off.log"))"
    [ $((SECONDS - t0)) -lt 20 ] || fail "$BACKEND: run --once without ca-derivations took $((SECONDS - t0)) s"
    grep -q "ca-derivations" "$T/ca-off.log" || fail "$BACKEND: no warning about ca-derivations"
    assert_eq "$(build_row "$id")" "1|9|0" "$BACKEND: CA build without ca-derivations"
    assert_eq "$(step_rows "$id")" "1|0|ca|0|9|0|" "$BACKEND: CA build rows"
    grep -q "ca-derivations experimental feature off" <<<"$(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")" ||
        fail "$BACKEND: CA build message"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
}

for_backends body

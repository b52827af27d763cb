#!/usr/bin/env bash
# Notifications sent by the runner, in order, on PostgreSQL (LISTEN with psql) and
# SQLite (sluice_events), hydra-behaviour §2.4: per build, build_started when its
# top-level step is dispatched, before that step's step_started, as Hydra's runner
# sends it (not for a dependency's step; not at all when the top level never runs),
# step_started and
# step_finished per step (step_finished carrying the log file's plain path), then build_finished
# last; a failure's build_finished names the build that ran the step followed by the
# dependent builds; a cached build sends build_finished only.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

id_of() { q "SELECT id FROM Builds WHERE job = '$1' ORDER BY id DESC LIMIT 1"; }
# the events of one build (first payload field), in order
events_of() { events | awk -v b="$1" '$2 == b'; }

body() {
    local p f c d1 d2 raw
    listen_start
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A onFod -A fail -A depA -A depB -k
    assert_eq "$rc" 100 "$BACKEND: build: exit status"
    p=$(id_of onFod) f=$(id_of fail) d1=$(id_of depA) d2=$(id_of depB)
    assert_eq "$(events_of "$p")" "$(printf '%s\n' "step_started $p 1" "step_finished $p 1" \
        "build_started $p" "step_started $p 2" "step_finished $p 2" "build_finished $p")" \
        "$BACKEND: events of a two-step success"
    assert_eq "$(events_of "$f")" "$(printf '%s\n' "build_started $f" "step_started $f 1" \
        "step_finished $f 1" "build_finished $f")" "$BACKEND: events of a failure"
    # the shared failing dependency ran in the lower build; the other one only finishes
    assert_eq "$(events_of "$d1")" "$(printf '%s\n' "step_started $d1 1" \
        "step_finished $d1 1" "build_finished $d1 $d2")" "$BACKEND: events of a dependency failure (no build_started: its top level never ran)"
    assert_eq "$(events_of "$d2")" "" "$BACKEND: no events of the build the failure reached"

    # step_finished carries the step's log file
    case $URL in
    sqlite:*) raw=$(q "SELECT payload FROM sluice_events WHERE channel = 'step_finished' AND payload LIKE '$p	2	%'") ;;
    *) raw=$(sed -nE "s/^Asynchronous notification \"step_finished\" with payload \"($p	2	[^\"]*)\".*/\\1/p" "$LISTEN_OUT") ;;
    esac
    local logf drv base
    logf=$(cut -f3 <<<"$raw")
    drv=$(q "SELECT drvPath FROM BuildSteps WHERE build = $p AND stepnr = 2")
    base=${drv#/nix/store/}
    # Hydra's plain path; the log was compressed beside it before the notification
    assert_eq "$logf" "$SLUICE_STATE_DIR/build-logs/${base:0:2}/${base:2}" "$BACKEND: step_finished log file"
    [ -s "$logf.zst" ] || fail "$BACKEND: $logf.zst is empty"

    # a cached build: build_finished only
    c=$(submit -A onFod)
    sl run --once
    assert_eq "$(build_row "$c")" "1|0|1" "$BACKEND: cached onFod"
    listen_stop
    assert_eq "$(events_of "$c")" "build_finished $c" "$BACKEND: events of a cached build"
    assert_eq "$(events | grep -c '^build_started ')" 2 "$BACKEND: build_started count"
    assert_eq "$(events | grep -c '^build_finished ')" 4 "$BACKEND: build_finished count"
}

for_backends body

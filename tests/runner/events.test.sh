#!/usr/bin/env bash
# How a running `sluice run` (one build slot) reacts to database events, on SQLite
# (sluice's triggers) and PostgreSQL (Hydra's triggers), hydra-behaviour §3.12; changes
# are made as Hydra's web UI makes them (builds_restarted: depfail.test.sh; bumps and
# jobset shares: priority.test.sh):
#  - the local machine runs as many steps at once as there are cores;
#  - builds_added: a build submitted to a running runner is built;
#  - builds_cancelled: a running step nobody needs any more is aborted (its row
#    status 4, the builder gone, the slot free);
#  - builds_deleted: the step of a deleted build is aborted and the slot is free.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }
builder_gone() { ! pgrep -f "$1" >/dev/null; }
now() { date +%s; }
body() {
    local id g cores
    # the local machine runs as many steps at once as there are cores
    cores=$(nproc)
    if [ "$cores" -le 4 ]; then
        phase "local machine: $cores slots"
        local gates=(gate gate2 gate3 gate4 gate5) args=() i
        for ((i = 0; i <= cores; i++)); do args+=(-A "${gates[$i]}"); done
        mapfile -t ids < <(submit "${args[@]}")
        run_bg
        for ((i = 0; i < cores; i++)); do
            wait_until 20 step_busy "${ids[$i]}" 30 || fail "$BACKEND: ${gates[$i]} is not building"
        done
        sleep 1
        assert_eq "$(step_rows "${ids[$cores]}")" "" "$BACKEND: a step beyond the $cores slots started"
        run_stop
        assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
        q "DELETE FROM Builds" >/dev/null
    fi
    run_bg --max-jobs 1

    phase "builds_added"
    id=$(submit -A empty)
    wait_until 20 build_is "$id" "1|0|0" || fail "$BACKEND: added build: $(build_row "$id")"

    phase "builds_cancelled: the running step is aborted"
    g=$(submit -A gate)
    wait_until 20 step_busy "$g" 30 || fail "$BACKEND: gate is not building"
    q "UPDATE Builds SET finished = 1, buildStatus = 4, isCachedBuild = 0, startTime = $(now), stopTime = $(now) WHERE id = $g" >/dev/null
    wait_until 15 builder_gone "gate $SALT: waiting" || fail "$BACKEND: the cancelled builder still runs"
    wait_until 10 step_busy "$g" 0 || fail "$BACKEND: the cancelled step is still busy"
    assert_eq "$(step_rows "$g")" "1|0|gate|0|4|0|" "$BACKEND: cancelled step row"
    assert_eq "$(build_row "$g")" "1|4|0" "$BACKEND: cancelled build"
    # the slot is free
    id=$(submit -A fod)
    wait_until 20 build_is "$id" "1|0|0" || fail "$BACKEND: build after a cancel: $(build_row "$id")"

    phase "builds_deleted: the running step is aborted"
    g=$(submit -A gate2)
    wait_until 20 step_busy "$g" 30 || fail "$BACKEND: gate2 is not building"
    q "DELETE FROM Builds WHERE id = $g" >/dev/null
    wait_until 15 builder_gone "gate2 $SALT: waiting" || fail "$BACKEND: the deleted build's builder still runs"
    # the aborted step's row is written once its worker has seen the builder end
    no_busy_rows() { [ "$(busy_rows)" = 0 ]; }
    wait_until 10 no_busy_rows || fail "$BACKEND: busy rows after a delete: $(busy_rows)"
    id=$(submit -A onFod)
    wait_until 20 build_is "$id" "1|0|0" || fail "$BACKEND: build after a delete: $(build_row "$id")"

    run_stop
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND: queue empty"
}

for_backends body

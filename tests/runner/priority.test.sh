#!/usr/bin/env bash
# Dispatch order of a running `sluice run` with one build slot, on SQLite and
# PostgreSQL (hydra-behaviour §3.6, §3.12), changed as Hydra's web UI changes it:
#  - builds_bumped: a build whose globalPriority is raised is dispatched before older
#    builds; a queued build cancelled meanwhile never runs (no row);
#  - jobset_shares_changed: the jobset share used (step seconds of the last day divided
#    by schedulingShares) orders the queue, and a change of schedulingShares reorders
#    it.
# The order is what the builders write into a file, one at a time.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }
builder_gone() { ! pgrep -f "$1" >/dev/null; }
now() { date +%s; }
order() { [ -e "$DIR/order" ] && tr '\n' ' ' <"$DIR/order" | sed 's/ $//'; }
order_is() { [ "$(order)" = "$1" ]; }
# insert a finished step of `secs` seconds into build $1 (jobset share history)
history() {
    q "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, startTime, stopTime, status,
                               system, machine)
       VALUES ($1, 100, 0, '/nix/store/00000000000000000000000000000000-history.drv', 0,
               $(($(now) - $2)), $(now), 0, 'x86_64-linux', '')" >/dev/null
}

body() {
    local g a b c d e f h hx hy
    # jobsets x and y with step history before the runner starts: x used 1000 s, y 100 s
    hx=$(submit --jobset x -A mid)
    hy=$(submit --jobset y -A mid)
    history "$hx" 1000
    history "$hy" 100
    run_bg --max-jobs 1
    wait_until 20 build_is "$hy" "1|0|1" || fail "$BACKEND: history builds: $(build_row "$hx") $(build_row "$hy")"

    phase "builds_bumped, and a queued build cancelled: never runs"
    g=$(submit -A gate3)
    wait_until 20 step_busy "$g" 30 || fail "$BACKEND: gate3 is not building"
    mapfile -t ids < <(submit -A orderA -A orderB -A orderC)
    a=${ids[0]} b=${ids[1]} c=${ids[2]}
    sleep 1 # queued behind gate3
    q "UPDATE Builds SET globalPriority = 10 WHERE id = $c" >/dev/null
    q "UPDATE Builds SET finished = 1, buildStatus = 4, isCachedBuild = 0, startTime = $(now), stopTime = $(now) WHERE id = $b" >/dev/null
    sleep 1.5 # both events seen
    touch "$DIR/go3"
    wait_until 20 build_is "$a" "1|0|0" || fail "$BACKEND: orderA: $(build_row "$a")"
    wait_until 5 build_is "$c" "1|0|0" || fail "$BACKEND: orderC: $(build_row "$c")"
    assert_eq "$(order)" "order-c order-a" "$BACKEND: the bumped build ran first, the cancelled one never"
    assert_eq "$(build_row "$b")" "1|4|0" "$BACKEND: cancelled queued build"
    assert_eq "$(step_rows "$b")" "" "$BACKEND: no rows for the cancelled queued build"
    : >"$DIR/order"

    phase "jobset shares: y (100 s / 100 shares) before x (1000 s / 100 shares) ..."
    g=$(submit -A gate4)
    wait_until 20 step_busy "$g" 30 || fail "$BACKEND: gate4 is not building"
    d=$(submit --jobset x -A orderD)
    e=$(submit --jobset y -A orderE)
    sleep 1.5
    touch "$DIR/go4"
    wait_until 20 order_is "order-e order-d" || fail "$BACKEND: shares: order '$(order)', expected y's build first"
    : >"$DIR/order"
    # ... until x gets 1000 times the shares (jobset_shares_changed)
    g=$(submit -A gate5)
    wait_until 20 step_busy "$g" 30 || fail "$BACKEND: gate5 is not building"
    f=$(submit --jobset x -A orderF)
    h=$(submit --jobset y -A orderG)
    sleep 1.5
    q "UPDATE Jobsets SET schedulingShares = 100000 WHERE name = 'x'" >/dev/null
    sleep 1.5
    touch "$DIR/go5"
    wait_until 20 order_is "order-f order-g" || fail "$BACKEND: shares changed: order '$(order)', expected x's build first"
    wait_until 10 build_is "$h" "1|0|0" || fail "$BACKEND: orderG: $(build_row "$h")"
    run_stop
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND: queue empty"
}

for_backends body

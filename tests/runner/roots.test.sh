#!/usr/bin/env bash
# The GC root of a build's top-level .drv (made by `sluice submit`) is released when the
# build is cancelled or deleted, on SQLite and PostgreSQL: while no runner runs (the
# runner's start drops the row and the root file), and while one runs (the row goes at
# the cancel event).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }
drv_roots() { q "SELECT count(*) FROM sluice_gcroots WHERE kind = 'drv' AND build = $1"; }
root_file() { q "SELECT root FROM sluice_gcroots WHERE kind = 'drv' AND build = $1"; }
no_drv_root() { [ "$(drv_roots "$1")" = 0 ]; }

body() {
    local a b c fa fb
    a=$(submit -A gate)
    b=$(submit -A onGate)
    assert_eq "$(drv_roots "$a")" 1 "$BACKEND: a root for build a"
    fa=$(root_file "$a")
    fb=$(root_file "$b")
    [ -L "$fa" ] && [ -L "$fb" ] || fail "$BACKEND: no root files $fa $fb"
    # cancelled (as Hydra's web interface does) and deleted while no runner runs
    q "UPDATE Builds SET finished = 1, buildStatus = 4, startTime = $(date +%s), stopTime = $(date +%s) WHERE id = $a" >/dev/null
    q "DELETE FROM Builds WHERE id = $b" >/dev/null
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once ($err)"
    assert_eq "$(drv_roots "$a")" 0 "$BACKEND: the cancelled build's root row"
    assert_eq "$(drv_roots "$b")" 0 "$BACKEND: the deleted build's root row"
    [ ! -e "$fa" ] && [ ! -L "$fa" ] || fail "$BACKEND: the cancelled build's root file is left"
    [ ! -e "$fb" ] && [ ! -L "$fb" ] || fail "$BACKEND: the deleted build's root file is left"

    # cancelled while the runner runs (its step waits for $DIR/go)
    c=$(submit -A gate2)
    run_bg
    wait_until 30 step_busy "$c" 30 || fail "$BACKEND: gate2 is not building"
    q "UPDATE Builds SET finished = 1, buildStatus = 4, startTime = $(date +%s), stopTime = $(date +%s) WHERE id = $c" >/dev/null
    wait_until 20 no_drv_root "$c" || fail "$BACKEND: the root row of a build cancelled while running is left"
    touch "$DIR/go2"
    run_stop
}

for_backends body

#!/usr/bin/env bash
# `sluice build -j N` (nix-build's --max-jobs): with -j 1 two independent builds run one
# after the other (one busy step while both wait to be released), with -j 2 side by
# side; -j 0 is an error before anything is queued.  SQLite only (-j is a runner
# option, the same for both databases).
source "$(dirname "$0")/../harness/env.sh"
SLUICE_TEST_BACKENDS=${SLUICE_TEST_BACKENDS:-sqlite}
source "$ROOT/tests/runner/lib.sh"

running() { # the drv names of the busy steps, sorted
    q "SELECT drvPath FROM BuildSteps WHERE busy <> 0" | sed 's/.*-\([a-z0-9]*\)\.drv$/\1/' | sort | tr '\n' ' '
}

build_bg() {
    (cd "$W" && exec "$SLUICE" build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" --no-out-link "$@") \
        >"$T/build-$BACKEND.out" 2>&1 &
    BPID=$!
    BG_PIDS+=("$BPID")
}

build_wait() {
    local r=0
    wait "$BPID" || r=$?
    assert_eq "$r" 0 "$BACKEND: sluice build $* exit status ($(tail -3 "$T/build-$BACKEND.out"))"
}

body() {
    local first second
    W=$T/work-$BACKEND
    mkdir -p "$W"

    phase "-j 1: one step at a time"
    build_bg -j 1 -A gate -A gate2
    wait_until 60 eval '[ "$(busy_rows)" = 1 ]' || fail "$BACKEND: no step started: $(cat "$T/build-$BACKEND.out")"
    sleep 2 # time enough for a second slot to take the other one
    assert_eq "$(busy_rows)" 1 "$BACKEND: busy steps with -j 1 ($(running))"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 2 "$BACKEND: both builds queued"
    first=$(running)
    case $first in
    "gate ") second="gate2 " && touch "$DIR/go" ;;
    "gate2 ") second="gate " && touch "$DIR/go2" ;;
    *) fail "$BACKEND: running: $first" ;;
    esac
    wait_until 60 eval '[ "$(running)" = "$second" ]' || fail "$BACKEND: the second step did not follow: $(running)"
    touch "$DIR/go" "$DIR/go2"
    build_wait -j 1

    phase "-j 2: side by side"
    build_bg -j 2 -A gate3 -A gate4
    wait_until 60 eval '[ "$(running)" = "gate3 gate4 " ]' || fail "$BACKEND: -j 2 did not run both: $(running)"
    touch "$DIR/go3" "$DIR/go4"
    build_wait -j 2

    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -j 0 -A gate5
    assert_eq "$rc" 2 "$BACKEND: -j 0 exit status (a usage error)"
    grep -q -- "-j needs a positive number" <<<"$err" || fail "$BACKEND: -j 0 message: $err"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE job = 'gate5'")" 0 "$BACKEND: -j 0 queued a build"
}
for_backends body
echo "ok"

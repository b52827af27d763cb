#!/usr/bin/env bash
# Cancellation as Hydra's web UI does it (UPDATE Builds SET finished = 1, buildStatus = 4,
# startTime = stopTime = now; SQLite's trigger emits builds_cancelled), of steps running
# on builder hosts over both protocols:
#  - cancel-x runs on b1 (ssh://); its build is cancelled: within seconds the step's
#    row is finished with status 4 and the builder is gone from b1;
#  - cancel-shared runs on b2 (ssh-ng://) for builds A and B: cancelling A leaves it
#    running (B needs it); cancelling B too aborts it the same way;
#  - no row stays busy, no machine is disabled, and the runner builds on afterwards.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
machines_file 'ssh://b1 x86_64-linux - 2 1 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 2 1 ca-derivations,hop2'
run_bg --machines "$T/machines"
cancel() {
    q "UPDATE Builds SET finished = 1, buildStatus = 4, startTime = strftime('%s', 'now'),
       stopTime = strftime('%s', 'now') WHERE id = $1"
}
building() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE drvPath LIKE '%-$1.drv' AND busy = 30")" = 1 ]; }
row_of() { q "SELECT build || '|' || busy || '|' || coalesce(status, -1) || '|' || machine FROM BuildSteps
              WHERE drvPath LIKE '%-$1.drv'"; }
aborted() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE drvPath LIKE '%-$1.drv' AND busy = 0 AND status = 4")" = 1 ]; }
gone() { ! host_has "$1" "farm-mark $2 $SALT"; }

x=$(submit --argstr sleep 120 -A cancelX)
a=$(submit --argstr sleep 120 -A cancelA)
b=$(submit --argstr sleep 120 -A cancelB)
wait_until 20 building cancel-x || { tail "$RUN_LOG"; fail "cancel-x not running"; }
wait_until 20 building cancel-shared || { tail "$RUN_LOG"; fail "cancel-shared not running"; }
wait_until 10 host_has 1 "farm-mark cancel-x $SALT" || fail "no cancel-x builder on b1"
wait_until 10 host_has 2 "farm-mark cancel-shared $SALT" || fail "no cancel-shared builder on b2"

# --- a step only the cancelled build needs
t0=$(date +%s%N)
cancel "$x"
wait_until 10 aborted cancel-x || { row_of cancel-x; tail "$RUN_LOG"; fail "cancel-x not aborted"; }
echo "cancel-x aborted after $((($(date +%s%N) - t0) / 1000000)) ms: $(row_of cancel-x)"
assert_eq "$(row_of cancel-x)" "$x|0|4|ssh://b1" "cancel-x row"
wait_until 10 gone 1 cancel-x || fail "the cancel-x builder still runs on b1"
assert_eq "$(build_row "$x")" "1|4" "build x"

# --- a step another build still needs
cancel "$a"
sleep 3
building cancel-shared || fail "cancel-shared stopped though build B needs it: $(row_of cancel-shared)"
host_has 2 "farm-mark cancel-shared $SALT" || fail "the cancel-shared builder left b2"
t0=$(date +%s%N)
cancel "$b"
wait_until 10 aborted cancel-shared || { row_of cancel-shared; tail "$RUN_LOG"; fail "cancel-shared not aborted"; }
echo "cancel-shared aborted after $((($(date +%s%N) - t0) / 1000000)) ms: $(row_of cancel-shared)"
wait_until 10 gone 2 cancel-shared || fail "the cancel-shared builder still runs on b2"
assert_eq "$(build_row "$a")|$(build_row "$b")" "1|4|1|4" "builds A and B"

# --- nothing left behind; the farm still works
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "busy rows"
grep -q "disabled for" "$RUN_LOG" && fail "a cancellation disabled a machine: $(grep 'disabled for' "$RUN_LOG")"
touch "$DIR/go"
mid=$(submit -A mid)
wait_until 30 build_done "$mid" || fail "mid not finished"
assert_eq "$(build_row "$mid")" "1|0" "mid after the cancellations"
run_stop
echo "ok: cancellation"

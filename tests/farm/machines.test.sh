#!/usr/bin/env bash
# The machines file of a running `sluice run` changes under it:
#  - a step needing a feature no machine has waits (max-unsupported-time 60); a host
#    with that feature is added to the file and the step runs there within seconds;
#  - a host removed from the file while it runs a step finishes that step, and gets no
#    new one;
#  - the local store builds only when the file lists it (`local`), and is the one
#    machine when no file is given.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 2
machines_file 'ssh-ng://b1 x86_64-linux - 1 2 ca-derivations'
run_bg --machines "$T/machines" --max-unsupported-time 60

# --- a host added
extra=$(submit -A extra)
sleep 3
assert_eq "$(build_row "$extra")" "0|" "extra waits for a host with the feature"
assert_eq "$(q "SELECT count(*) FROM BuildSteps")" 0 "no step row yet"
t0=$(date +%s%N)
machines_file 'ssh-ng://b1 x86_64-linux - 1 2 ca-derivations' \
    'ssh://b2 x86_64-linux - 1 1 ca-derivations,extra'
wait_until 15 build_done "$extra" || { tail "$RUN_LOG"; fail "extra not built after the host was added"; }
dt=$((($(date +%s%N) - t0) / 1000000))
echo "extra built ${dt} ms after its host was added"
assert_eq "$(steps_of "$extra" | cut -d'|' -f2-)" "extra|0|ssh://b2" "extra on the new host"
[ "$dt" -lt 8000 ] || fail "the change took ${dt} ms to take effect"

# --- a host removed while it builds
silent=$(submit --argstr sleep 5 -A silent)
building() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND busy = 30")" = 1 ]; }
wait_until 15 building "$silent" || fail "silent never ran"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $silent")" ssh-ng://b1 "silent on b1 (speed 2)"
machines_file 'ssh://b2 x86_64-linux - 1 1 ca-derivations,extra'
sleep 2
base=$(submit -A base)
wait_until 30 build_done "$silent" || fail "silent not finished"
wait_until 30 build_done "$base" || fail "base not finished"
assert_eq "$(steps_of "$silent" | cut -d'|' -f2-)" "silent|0|ssh-ng://b1" "silent finished on the removed host"
assert_eq "$(steps_of "$base" | cut -d'|' -f2-)" "base|0|ssh://b2" "base not on the removed host"

# --- the local store only when listed
machines_file 'local x86_64-linux - 2 1 ca-derivations'
sleep 2
mid=$(submit -A mid)
wait_until 30 build_done "$mid" || fail "mid not finished"
assert_eq "$(steps_of "$mid" | cut -d'|' -f2-)" "mid|0|" "mid on the local store"
run_stop
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE machine = '' AND build <> $mid")" 0 \
    "nothing else ran locally"

# --- no machines file: the local store is the machine
sl build "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" --argstr sleep 0 -A silent2
assert_eq "$rc" 0 "build without a machines file: $err"
assert_eq "$(steps_of "$(build_id silent2)" | cut -d'|' -f2-)" "silent2|0|" "silent2 built locally"
echo "ok: machines file changes"

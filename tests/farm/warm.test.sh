#!/usr/bin/env bash
# Warm sessions (`warm-sessions`): sessions opened ahead of need on a builder that then
# restarts (every process of the host killed, its ssh connections cut) are found dead
# when a step takes them and replaced, without failing the step: on ssh-ng:// and on
# ssh://, every step of the builds after the restart succeeds at its first attempt.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 1
export SLUICE_LOG=3 # the warm sessions' debug lines

for proto in ssh-ng ssh; do
    machines_file "$proto://b1 x86_64-linux - 2 1"
    run_bg --machines "$T/machines"
    "$SLUICE" submit "$FARM_NIX" --argstr salt "$SALT-$proto-1" --argstr dir "$DIR" -A base >"$T/ids1"
    first=$(cat "$T/ids1")
    wait_until 60 build_done "$first" || { tail -20 "$RUN_LOG"; fail "$proto: build $first not finished"; }
    wait_until 20 grep -q "warm session to $proto://b1 opened" "$RUN_LOG" ||
        fail "$proto: no warm session opened"
    "$M" restart 1 >/dev/null
    "$SLUICE" submit "$FARM_NIX" --argstr salt "$SALT-$proto-2" --argstr dir "$DIR" -A mid >"$T/ids2"
    second=$(cat "$T/ids2")
    wait_until 60 build_done "$second" || { tail -20 "$RUN_LOG"; fail "$proto: build $second not finished"; }
    run_stop
    grep -q "warm session to $proto://b1 died while idle: replaced" "$RUN_LOG" ||
        fail "$proto: the dead warm session was not detected"
    for id in $first $second; do assert_eq "$(build_row "$id")" "1|0" "$proto: build $id"; done
    steps_of "$second"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $second AND status <> 0")" 0 \
        "$proto: failed step rows after the restart"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $second AND status = 0")" 2 \
        "$proto: base and mid built once each"
done
echo "ok: warm sessions that died while idle are replaced"

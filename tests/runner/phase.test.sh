#!/usr/bin/env bash
# A running step's phase, step number and start time, read while the worker moves on:
# `sluice build` prints the phase every second and the runner's machines snapshot
# (STATE_DIR/machines.json) names the step with its phase and row; under the
# ThreadSanitizer build (make tsan) neither read races with the worker's writes.
source "$(dirname "$0")/../harness/env.sh"
need_nix
DIR=$T/dir
mkdir -p "$DIR"
snap=$T/machines.json
# hold the step (it waits for $DIR/go) until the snapshot shows it building
(
    for _ in $(seq 1 300); do
        if [ -e "$SLUICE_STATE_DIR/machines.json" ] &&
            grep -q '"phase":"building"' "$SLUICE_STATE_DIR/machines.json"; then
            cp "$SLUICE_STATE_DIR/machines.json" "$snap"
            sleep 3
            break
        fi
        sleep 0.1
    done
    touch "$DIR/go"
) &
gate_pid=$!
rc=0
"$SLUICE" build --db "sqlite:$T/db.sqlite" "$ROOT/tests/runner/nix/jobs.nix" \
    --argstr salt "phase$(date +%s%N)" --argstr dir "$DIR" -A gate >"$T/out" 2>"$T/err" || rc=$?
wait "$gate_pid"
assert_eq "$rc" 0 "sluice build: exit status ($(tail -3 "$T/err"))"
grep -q 'building gate ([0-9]*s)' "$T/err" || fail "no progress line naming the building step: $(tail -3 "$T/err")"
[ -s "$snap" ] || fail "the machines snapshot never showed the step building"
stepnr=$(jq -r '.machines[].currentSteps[] | select(.drvPath | endswith("-gate.drv")) | .stepnr' "$snap")
assert_eq "$stepnr" 1 "the snapshot's step number"
elapsed=$(jq -r '.machines[].currentSteps[] | select(.drvPath | endswith("-gate.drv")) | .elapsed' "$snap")
[ "$elapsed" -ge 0 ] && [ "$elapsed" -lt 60 ] || fail "elapsed $elapsed"

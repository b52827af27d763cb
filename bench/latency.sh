#!/usr/bin/env bash
# bench/latency.sh: queued-to-started latency on an idle local machine.  A runner with
# an empty queue waits (the local store is the only machine, 2 slots); REPS times a
# fresh trivial derivation is written and queued (INSERT INTO Builds and builds_added
# in one transaction, as `sluice submit` and Hydra's evaluator do), and the time from
# the commit to the build's first BuildSteps row (the step started: busy, on a machine)
# is measured by polling the database every 0.2 ms (bench/gen-graph.c `latency`).
# Each build is left to finish before the next one is queued.
#
#   bench/latency.sh [REPS]               default 20
#   BACKENDS="sqlite postgresql"          (default both)
#
# Columns: backend rep ms load; then per backend: backend summary mean p50 p90 max
# Target (the issue): under 100 ms.
source "$(dirname "$0")/lib.sh"
bench_setup
REPS=${1:-20}
BACKENDS=${BACKENDS:-sqlite postgresql}
# shellcheck disable=SC2086
backends_up $BACKENDS
printf 'backend\trep\tms\tload\n'
for backend in $BACKENDS; do
    url=$(db_new "$backend" latency)
    runner_start "$BT/run-$backend" "$url" --max-jobs 2
    sleep 2
    load=$(bench_load)
    "$GEN" latency --db "$url" --salt "lat-$(date +%s%N)" --reps "$REPS" >"$BT/lat-$backend"
    runner_stop
    awk -v b="$backend" -v l="$load" '{ printf "%s\t%d\t%s\t%s\n", b, NR, $1, l }' "$BT/lat-$backend"
    sort -n "$BT/lat-$backend" | awk -v b="$backend" '{ v[NR] = $1; s += $1 } END {
        printf "%s\tsummary\tmean %.1f p50 %s p90 %s max %s\n", b, s / NR, v[int((NR + 1) / 2)],
            v[int(NR * 0.9 + 0.5)], v[NR] }'
done

#!/usr/bin/env bash
# bench/restart.sh: restart-to-first-dispatch with a large queue.  The nixpkgs-shaped
# graph of bench/ingest.sh (N derivations, N/2 builds) is queued into a fresh database;
# `sluice run` starts with nothing in memory (the local store is the only machine, 2
# slots) and the time from the process start to the first BuildSteps row of a real
# build (type 0; rows are inserted busy when a step starts) is measured by polling the
# database every 2 ms (bench/gen-graph.c `first-step`).  Ingest streams: dispatch starts
# long before the queue pass ends (bench/ingest.sh times the whole pass).  The runner is
# stopped right after the first step, so only a handful of the graph's derivations get
# built (the graph stays usable for the other scripts).
#
#   bench/restart.sh [N]                  default 300000
#   BACKENDS="sqlite postgresql"          (default both)
#
#   REPS=3                                (at least 3) runs per backend, alternating
#
# Columns: n rep builds backend first_step_s builds_read_then load, then per backend
# "n spread BACKEND min median max" of first_step_s.
# Target (the issue): under 10 s at 300,000 steps.
source "$(dirname "$0")/lib.sh"
bench_setup
N=${1:-300000}
BACKENDS=${BACKENDS:-sqlite postgresql}
# shellcheck disable=SC2086
backends_up $BACKENDS
REPS=${REPS:-3}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
name=g$((N / 1000))k
graph "$name" --nodes "$N" --builds $((N / 2))
printf 'n\trep\tbuilds\tbackend\tfirst_step_s\tbuilds_read_then\tload\n'
for rep in $(seq 1 "$REPS"); do for backend in $BACKENDS; do
    url=$(db_new "$backend" "restart_$name")
    q=$("$GEN" queue --db "$url" --list "$LIST")
    load=$(bench_load)
    t0=$(date +%s%3N)
    runner_start "$BT/run-$backend-$rep" "$url" --max-jobs 2
    ms=$("$GEN" first-step --db "$url" --t0-ms "$t0" --timeout 300)
    read_then=$(metric sluice_builds_read_total)
    runner_stop
    awk -v n="$N" -v b="$(cut -f1 <<<"$q")" -v be="$backend" -v ms="$ms" -v p="$read_then" \
        -v l="$load" -v rep="$rep" 'BEGIN { printf "%s\t%s\t%s\t%s\t%.3f\t%s\t%s\n", n, rep, b, be, ms / 1000, p, l }' |
        tee -a "$BT/rows"
done; done
for backend in $BACKENDS; do
    awk -F'\t' -v b="$backend" '$4 == b { print $5 }' "$BT/rows" >"$BT/col"
    printf '%s\tspread\t%s\t%s\n' "$N" "$backend" "$(spread "$BT/col")"
done

#!/usr/bin/env bash
# bench/ingest.sh: cold-start ingest of a large nixpkgs-shaped queue.  For each size N
# (derivations) a graph from bench/gen-graph.c (300 bootstrap nodes, depth 30, 2-8
# inputs, 10% floating CA; N/2 builds) is generated once (cached in bench/out/graphs)
# and queued into a fresh database; then `sluice run` starts with nothing in memory and
# a machines file whose only machine fits no step (so nothing is built and ingest is
# measured alone).  Measured: the first queue pass (sluice_ingest_pass_last_seconds,
# timed inside the runner), the wall time from the process start to the end of that
# pass, the peak RSS (VmHWM) and the RSS growth per unfinished step.
#
#   bench/ingest.sh [N...]                default: 100000 300000
#   BACKENDS="sqlite postgresql"          (default both)   BUILD=build (objects used)
#   REPS=3                                (at least 3) runs per backend, the backends
#                                         alternating (sqlite, postgresql, sqlite, ...)
#
# Columns: n rep builds steps backend queue_s ingest_s wall_s cpu_s peak_rss_mb
#          rss_idle_mb bytes_per_step load
# then per (n, backend) "n spread BACKEND FIGURE min median max" for wall_s, ingest_s
# and peak_rss_mb.
#   cpu_s: the runner's CPU time (user + system) up to the end of the pass: the pass is
#   single-threaded, so on an idle machine its wall time is close to this (plus the
#   local nix-daemon's share); on a loaded one wall time is not.
# Targets (the issue): 300,000 steps in < 60 s and < 300 MB.  Reference point: Hydra's
# runner needs about 1 GB for 290,000 steps (not run here).
source "$(dirname "$0")/lib.sh"
bench_setup
[ $# -gt 0 ] || set -- 100000 300000
BACKENDS=${BACKENDS:-sqlite postgresql}
# shellcheck disable=SC2086
backends_up $BACKENDS
REPS=${REPS:-3}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
printf '%s\n' 'local x86_64-linux - 2 1 - bench-never' >"$BT/machines-none"

# RSS of an idle runner (empty queue) for the per-step figure
url=$(db_new sqlite idle)
runner_start "$BT/idle" "$url" --machines "$BT/machines-none"
sleep 2
IDLE_KB=$(rss_kb "$RPID")
runner_stop

printf 'n\trep\tbuilds\tsteps\tbackend\tqueue_s\tingest_s\twall_s\tcpu_s\tpeak_rss_mb\trss_idle_mb\tbytes_per_step\tload\n'
for n in "$@"; do
    name=g$((n / 1000))k
    graph "$name" --nodes "$n" --builds $((n / 2))
    for rep in $(seq 1 "$REPS"); do for backend in $BACKENDS; do
        url=$(db_new "$backend" "ingest_$name")
        q=$("$GEN" queue --db "$url" --list "$LIST")
        builds=$(cut -f1 <<<"$q")
        load=$(bench_load)
        t0=$(date +%s%N)
        runner_start "$BT/run-$name-$backend" "$url" --machines "$BT/machines-none" \
            --max-unsupported-time 100000000
        # the first pass is over when ingest is inactive and the pass time is set
        while :; do
            sleep 0.5
            act=$(metric sluice_ingest_active || echo 1)
            pass=$(metric sluice_ingest_pass_last_seconds || echo 0)
            if [ "$act" = 0 ] && [ "$pass" != 0 ]; then break; fi
            kill -0 "$RPID" || { echo "runner died" >&2; exit 1; }
        done
        t1=$(date +%s%N)
        steps=$(metric sluice_steps_unfinished)
        cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$RPID/stat")
        peak=$(rss_peak_kb "$RPID")
        rss=$(rss_kb "$RPID")
        runner_stop
        awk -v n="$n" -v b="$builds" -v s="$steps" -v be="$backend" -v q="$(cut -f2 <<<"$q")" \
            -v p="$pass" -v w=$(((t1 - t0) / 1000000)) -v pk="$peak" -v r="$rss" -v idle="$IDLE_KB" \
            -v l="$load" -v cpu="$cpu" -v rep="$rep" 'BEGIN {
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%.0f\t%.0f\t%.0f\t%s\n", n, rep, b, s, be, q, p,
                w / 1000, cpu, pk / 1024, idle / 1024, (r - idle) * 1024 / s, l }' | tee -a "$BT/rows-$n"
    done; done
    for backend in $BACKENDS; do
        for col in wall_s:8 ingest_s:7 peak_rss_mb:10; do
            awk -F'\t' -v b="$backend" -v c="${col#*:}" '$5 == b { print $c }' "$BT/rows-$n" >"$BT/col"
            printf '%s\tspread\t%s\t%s\t%s\n' "$n" "$backend" "${col%%:*}" "$(spread "$BT/col")"
        done
    done
done

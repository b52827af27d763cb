#!/usr/bin/env bash
# bench/dispatch.sh: dispatcher round time with N runnable steps and every machine busy.
# A graph of N independent derivations (all runnable at once) plus two "sleeper" builds
# of the highest global priority, whose builders sleep for an hour, is queued into a
# fresh database; the local store is the only machine, with 2 slots, so the sleepers
# take both slots and every later round finds no free machine.  The round time is
# measured inside the runner (RunnerStats, exported as sluice_dispatch_round_seconds):
# the mean over the rounds during ingest (each new runnable step wakes the dispatcher)
# and over WINDOW seconds after it (rounds woken by the one-second timer), and the
# last round.
#
#   bench/dispatch.sh [N]                 default 35000;  WINDOW=10 seconds
#   BACKENDS="sqlite postgresql"          (default both)
#
# Columns: runnable backend phase rounds mean_ms last_ms load
# Target (the issue): under 5 ms at 35,000 runnable.  Reference point: Hydra's runner
# spends about 100 ms per round there (not run here).
source "$(dirname "$0")/lib.sh"
bench_setup
N=${1:-35000}
WINDOW=${WINDOW:-10}
BACKENDS=${BACKENDS:-sqlite postgresql}
printf '%s\n' 'local x86_64-linux - 2 1' >"$BT/machines"
name=leaves$((N / 1000))k
graph "$name" --leaves --nodes "$N" --sleepers 2

printf 'runnable\tbackend\tphase\trounds\tmean_ms\tlast_ms\tload\n'
for backend in $BACKENDS; do
    url=$(db_new "$backend" "dispatch_$name")
    "$GEN" queue --db "$url" --list "$LIST" >/dev/null
    load=$(bench_load)
    runner_start "$BT/run-$backend" "$url" --machines "$BT/machines"
    while :; do
        sleep 0.5
        act=$(metric sluice_ingest_active || echo 1)
        pass=$(metric sluice_ingest_pass_last_seconds || echo 0)
        if [ "$act" = 0 ] && [ "$pass" != 0 ]; then break; fi
        kill -0 "$RPID" || { echo "runner died" >&2; exit 1; }
    done
    runnable=$(curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk '$1 ~ /^sluice_runnable_steps/ { s += $2 } END { print s + 0 }')
    running=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "sluice_steps{state=\"running\"}" { print $2 }')
    echo "$backend: $runnable runnable, $running running" >&2
    s1=$(metric sluice_dispatch_round_seconds_sum)
    c1=$(metric sluice_dispatch_round_seconds_count)
    sleep "$WINDOW"
    s2=$(metric sluice_dispatch_round_seconds_sum)
    c2=$(metric sluice_dispatch_round_seconds_count)
    last=$(metric sluice_dispatch_round_last_seconds)
    runner_stop
    awk -v r="$runnable" -v b="$backend" -v s1="$s1" -v c1="$c1" -v s2="$s2" -v c2="$c2" \
        -v last="$last" -v l="$load" 'BEGIN {
        printf "%s\t%s\tingest\t%d\t%.4f\t\t%s\n", r, b, c1, (c1 ? s1 * 1000 / c1 : 0), l
        printf "%s\t%s\tall-busy\t%d\t%.4f\t%.4f\t%s\n", r, b, c2 - c1,
            (c2 > c1 ? (s2 - s1) * 1000 / (c2 - c1) : 0), last * 1000, l }'
done

#!/usr/bin/env bash
# bench/e2e.sh: end to end on one machine, sluice against Nix itself in the same run.
# For each size N and kind (IA, CA) the layered DAG of bench/dag.nix (N trivial
# derivations, 10 layers) is built twice from nothing, each with its own fresh salt:
#   nix      `nix-instantiate` then `nix-store -r -j2` of the top layer (local store)
#   sluice   `sluice build bench/dag.nix ...` with max-jobs 2 (the local store as the
#            only machine, fresh SQLite database): evaluation, queueing, every step
#            and the results recorded in the database
# Each side runs REPS times, interleaved (nix, sluice, nix, sluice, ...), so both see
# the same machine.  Nix's and sluice's stderr are kept in bench/out/logs/; a process
# outside the run holding the local store's database (sampled every 0.2 s) fails the
# script: it would measure the contention, not the tools.  Lock contention in a run's
# output ("database is busy", "waiting for ... lock") with nothing outside is the run's
# own processes contending with each other: said on stderr, counted, not a failure.
#
#   bench/e2e.sh [N...]                   default: 1000 5000
#   KINDS="ia ca"                         (default both);  REPS=3 (at least 3)
#   CACHE=xz|zstd|none                    instead of Nix, the baseline is sluice without
#                                         a binary cache and the other side `sluice build
#                                         --store-uri file://DIR?secret-key=K&compression=
#                                         CACHE` (every output signed and published), tool
#                                         "cache"; target: at most 1.2x
#
# Columns: one row per run
#   n kind rep tool inst_s build_s total_s load
# (sluice: inst_s empty, total = build), then per (n, kind) and tool a summary row
#   n kind spread tool min median max        (of total_s)
# and one row  n kind ratio <median sluice / median nix> <same over nix build_s alone>
# Targets (the issue): CA (and IA) at most 1.0x `nix-store -r` at 1,000 and 0.5x at 5,000.
# With CACHE the rows of the baseline say tool "sluice", the others "cache", and the
# ratio row is median cache / median sluice, again, then the ratios of the minima and
# of the maxima.
source "$(dirname "$0")/lib.sh"
bench_setup
[ $# -gt 0 ] || set -- 1000 5000
KINDS=${KINDS:-ia ca}
REPS=${REPS:-3}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
STAMP=$(date +%Y%m%d-%H%M%S)
ms() { echo $(($(date +%s%N) / 1000000)); }
CACHE=${CACHE:-}
if [ -n "$CACHE" ]; then
    nix-store --generate-binary-cache-key bench-cache "$BT/cache.sk" "$BT/cache.pk"
fi
# sluice_build TOOL N KIND REP CA [ARGS...]: one timed `sluice build`, a row, its total
# appended to $BT/TOOL.tot
sluice_build() {
    local tool=$1 n=$2 kind=$3 rep=$4 ca=$5 load salt st t3 t4
    shift 5
    load=$(bench_load)
    salt=e2e-$tool-$(date +%s%N)
    st=$BT/$tool-$n-$kind-$rep
    mkdir -p "$st"
    store_watch_start "$BT/watch"
    t3=$(ms)
    "$SLUICE" --state-dir "$st" --db "sqlite:$st/sluice.db" build --max-jobs 2 bench/dag.nix \
        --argstr n "$n" --argstr salt "$salt" --arg ca "$ca" "$@" >"$st/out" 2>"$st/err" ||
        { tail -3 "$st/err" >&2; exit 1; }
    t4=$(ms)
    store_watch_stop
    keep_log "$st/err" "e2e-$STAMP-$n-$kind-$rep-$tool.err"
    busy_check "$st/err" "$tool"
    printf '%s\t%s\t%s\t%s\t\t%s\t%s\t%s\n' "$n" "$kind" "$rep" "$tool" "$(sec $((t4 - t3)))" \
        "$(sec $((t4 - t3)))" "$load"
    sec $((t4 - t3)) >>"$BT/$tool.tot"
    rm -rf "$st"
}
# busy_check LOG TOOL: a process outside the run that held the store fails the script;
# the run's own contention (its processes with each other) is counted and said
busy_check() {
    local busy
    busy=$(contention_outside "$1" "$BT/watch") && exit 1
    [ "$busy" = 0 ] || echo "$2: $busy lock-contention lines of the run's own processes" >&2
}
# (one value a line: the .tot files are read by spread)
sec() { awk -v a="$1" 'BEGIN { printf "%.3f\n", a / 1000 }'; }
printf 'n\tkind\trep\ttool\tinst_s\tbuild_s\ttotal_s\tload\n'
for n in "$@"; do
    for kind in $KINDS; do
        ca=false
        [ "$kind" = ca ] && ca=true
        : >"$BT/nix.tot"
        : >"$BT/nix.build"
        : >"$BT/sluice.tot"
        : >"$BT/cache.tot"
        for rep in $(seq 1 "$REPS"); do
            if [ -n "$CACHE" ]; then
                sluice_build cache "$n" "$kind" "$rep" "$ca" --store-uri \
                    "file://$BT/cache-$n-$kind-$rep?secret-key=$BT/cache.sk&compression=$CACHE"
                rm -rf "$BT/cache-$n-$kind-$rep"
            else
                load=$(bench_load)
                salt=e2e-nix-$(date +%s%N)
                store_watch_start "$BT/watch"
                t0=$(ms)
                nix-instantiate bench/dag.nix --argstr n "$n" --argstr salt "$salt" --arg ca "$ca" \
                    --add-root "$BT/nix-roots/top" --indirect >"$BT/tops" 2>"$BT/nix-inst.err" ||
                    { tail -3 "$BT/nix-inst.err" >&2; exit 1; }
                t1=$(ms)
                xargs nix-store -r -j2 --add-root "$BT/nix-roots/out" --indirect <"$BT/tops" \
                    >/dev/null 2>"$BT/nix.err" || { tail -3 "$BT/nix.err" >&2; exit 1; }
                t2=$(ms)
                store_watch_stop
                cat "$BT/nix-inst.err" "$BT/nix.err" >"$BT/nix-all.err"
                keep_log "$BT/nix-all.err" "e2e-$STAMP-$n-$kind-$rep-nix.err"
                busy_check "$BT/nix-all.err" nix
                printf '%s\t%s\t%s\tnix\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$rep" "$(sec $((t1 - t0)))" \
                    "$(sec $((t2 - t1)))" "$(sec $((t2 - t0)))" "$load"
                sec $((t2 - t0)) >>"$BT/nix.tot"
                sec $((t2 - t1)) >>"$BT/nix.build"
            fi
            sluice_build sluice "$n" "$kind" "$rep" "$ca"
        done
        if [ -n "$CACHE" ]; then
            for tool in sluice cache; do
                printf '%s\t%s\tspread\t%s\t%s\n' "$n" "$kind" "$tool" "$(spread "$BT/$tool.tot")"
            done
            awk -v n="$n" -v k="$kind" -v s="$(spread "$BT/cache.tot")" \
                -v a="$(spread "$BT/sluice.tot")" 'BEGIN { split(s, c, "\t"); split(a, b, "\t")
                    printf "%s\t%s\tratio\t%.2f\t%.2f\t%.2f\t%.2f\n", n, k, c[2] / b[2],
                        c[2] / b[2], c[1] / b[1], c[3] / b[3] }'
            continue
        fi
        for tool in nix sluice; do
            printf '%s\t%s\tspread\t%s\t%s\n' "$n" "$kind" "$tool" "$(spread "$BT/$tool.tot")"
        done
        awk -v n="$n" -v k="$kind" -v s="$(spread "$BT/sluice.tot" | cut -f2)" \
            -v a="$(spread "$BT/nix.tot" | cut -f2)" -v b="$(spread "$BT/nix.build" | cut -f2)" \
            'BEGIN { printf "%s\t%s\tratio\t%.2f\t%.2f\n", n, k, s / a, s / b }'
    done
done

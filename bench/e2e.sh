#!/usr/bin/env bash
# bench/e2e.sh: end to end on one machine, sluice against Nix itself in the same run.
# For each size N and kind (IA, CA) the layered DAG of bench/dag.nix (N trivial
# derivations, 10 layers) is built twice from nothing, each with its own fresh salt:
#   nix      `nix-instantiate` then `nix-store -r -j2` of the top layer (local store)
#   sluice   `sluice build bench/dag.nix ...` with max-jobs 2 (the local store as the
#            only machine, fresh SQLite database): evaluation, queueing, every step
#            and the results recorded in the database
# The ratio is sluice's wall time over Nix's (instantiate + realise); ratio_r over
# `nix-store -r` alone.
#
#   bench/e2e.sh [N...]                   default: 1000 5000
#   KINDS="ia ca"                         (default both)
#
# Columns: n kind nix_inst_s nix_build_s sluice_s ratio ratio_r load
# Targets (the issue): CA (and IA) at most 1.0x `nix-store -r` at 1,000 and 0.5x at 5,000.
source "$(dirname "$0")/lib.sh"
bench_setup
[ $# -gt 0 ] || set -- 1000 5000
KINDS=${KINDS:-ia ca}
printf 'n\tkind\tnix_inst_s\tnix_build_s\tsluice_s\tratio\tratio_r\tload\n'
for n in "$@"; do
    for kind in $KINDS; do
        ca=false
        [ "$kind" = ca ] && ca=true
        load=$(bench_load)
        salt=e2e-nix-$(date +%s%N)
        t0=$(date +%s%N)
        nix-instantiate bench/dag.nix --argstr n "$n" --argstr salt "$salt" --arg ca "$ca" \
            --add-root "$BT/nix-roots/top" --indirect >"$BT/tops" 2>/dev/null
        t1=$(date +%s%N)
        xargs nix-store -r -j2 --add-root "$BT/nix-roots/out" --indirect <"$BT/tops" \
            >/dev/null 2>"$BT/nix.err" || { tail -3 "$BT/nix.err" >&2; exit 1; }
        t2=$(date +%s%N)
        salt=e2e-sluice-$(date +%s%N)
        st=$BT/sluice-$n-$kind
        mkdir -p "$st"
        t3=$(date +%s%N)
        "$SLUICE" --state-dir "$st" --db "sqlite:$st/sluice.db" build --max-jobs 2 bench/dag.nix \
            --argstr n "$n" --argstr salt "$salt" --arg ca "$ca" >"$st/out" 2>"$st/err" ||
            { tail -3 "$st/err" >&2; exit 1; }
        t4=$(date +%s%N)
        awk -v n="$n" -v k="$kind" -v a=$(((t1 - t0) / 1000000)) -v b=$(((t2 - t1) / 1000000)) \
            -v s=$(((t4 - t3) / 1000000)) -v l="$load" 'BEGIN {
            printf "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\n", n, k, a / 1000, b / 1000,
                s / 1000, s / (a + b), s / b, l }'
    done
done

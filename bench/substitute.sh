#!/usr/bin/env bash
# bench/substitute.sh: use-substitutes against Nix's own substitution, same run.  The
# layered DAG of bench/dag.nix (N nodes, 10 layers) has its bottom 9 layers (90%) in a
# file:// binary cache made once by real Nix (built in a private store, `nix copy --to
# file://...?secret-key=...`).  Each measured run starts from an empty private store
# (a mount namespace with an empty directory over /nix, the drvs instantiated first,
# untimed) whose only substituter is that cache:
#   nix      `nix-store -r -j2` of the top layer
#   sluice   `sluice build --use-substitutes true --max-jobs 2` of the same drvs (fresh
#            SQLite database): lookup, substitution of the cached 90%, build of the rest
# REPS runs each (at least 3), interleaved.  sluice's ingest also reports how many
# levels it walked and how many substitution questions it asked (its debug line).
#
#   bench/substitute.sh [N]            default: 1000;  REPS=3
#
# Columns: one row per run
#   n rep tool seconds levels questions load      (levels, questions: sluice only)
# then per tool  n spread tool min median max,  and  n ratio <median sluice / median nix>
# Targets (the issue): ratio <= 1.0; questions <= levels (one per level of the walk).
source "$(dirname "$0")/lib.sh"
bench_setup
N=${1:-1000}
REPS=${REPS:-3}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (mount namespaces)" >&2; exit 2; }
STAMP=$(date +%Y%m%d-%H%M%S)
SALT=subst-$(date +%s%N)
CACHE=$BT/cache
ms() { echo $(($(date +%s%N) / 1000000)); }
sec() { awk -v a="$1" 'BEGIN { printf "%.3f", a / 1000 }'; }

# in_store DIR CMD...: CMD with the empty (or earlier) store DIR as /nix
in_store() {
    STORE_DIR=$1 unshare --mount --propagation private \
        sh -c 'mount --bind "$STORE_DIR" /nix && shift && exec env -u NIX_REMOTE "$@"' sh "$@"
}
inst() { # inst STORE [LAYER]: the drvs of the top layer (or LAYER)
    in_store "$1" nix-instantiate bench/dag.nix --argstr n "$N" --argstr salt "$SALT" \
        ${2:+--argstr layer "$2"} 2>>"$BT/inst.err"
}

nix-store --generate-binary-cache-key bench-k1 "$BT/k1.sk" "$BT/k1.pk"
echo "making the cache: layers 0-8 of $N nodes" >&2
mkdir -p "$BT/origin"
inst "$BT/origin" 8 >"$BT/layer8"
mapfile -t drvs <"$BT/layer8"
in_store "$BT/origin" nix-store -r -j2 "${drvs[@]}" >"$BT/layer8.out" 2>"$BT/origin.err" ||
    { tail -3 "$BT/origin.err" >&2; exit 1; }
mapfile -t outs <"$BT/layer8.out"
in_store "$BT/origin" nix copy --to "file://$CACHE?secret-key=$BT/k1.sk&compression=none" \
    "${outs[@]}" 2>>"$BT/origin.err" || { tail -3 "$BT/origin.err" >&2; exit 1; }
echo "cache: $(ls "$CACHE" | grep -c narinfo) paths" >&2
rm -rf "$BT/origin"
export NIX_CONFIG="$NIX_CONFIG
substituters = file://$CACHE
trusted-public-keys = $(cat "$BT/k1.pk")"

printf 'n\trep\ttool\tseconds\tlevels\tquestions\tload\n'
: >"$BT/nix.tot"
: >"$BT/sluice.tot"
for rep in $(seq 1 "$REPS"); do
    for tool in nix sluice; do
        st=$BT/run-$tool-$rep
        mkdir -p "$st/nix"
        mapfile -t tops < <(inst "$st/nix")
        load=$(bench_load)
        levels=
        questions=
        t0=$(ms)
        if [ $tool = nix ]; then
            in_store "$st/nix" nix-store -r -j2 "${tops[@]}" >/dev/null 2>"$st/err" ||
                { tail -3 "$st/err" >&2; exit 1; }
        else
            in_store "$st/nix" "$SLUICE" -v --state-dir "$st/state" --db "sqlite:$st/sluice.db" \
                build --no-out-link --use-substitutes true --max-jobs 2 "${tops[@]}" >/dev/null \
                2>"$st/err" || { tail -3 "$st/err" >&2; exit 1; }
        fi
        t1=$(ms)
        keep_log "$st/err" "substitute-$STAMP-$rep-$tool.err"
        contention "$st/err" && exit 1
        if [ $tool = sluice ]; then
            read -r levels questions < <(sed -nE 's/.*queue pass: [1-9][0-9]* builds read in [0-9]+ ms, ([0-9]+) levels walked, ([0-9]+) substitution questions.*/\1 \2/p' "$st/err" | head -1)
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$N" "$rep" "$tool" "$(sec $((t1 - t0)))" \
            "$levels" "$questions" "$load"
        echo "$(sec $((t1 - t0)))" >>"$BT/$tool.tot"
        rm -rf "$st"
    done
done
for tool in nix sluice; do
    printf '%s\tspread\t%s\t%s\n' "$N" "$tool" "$(spread "$BT/$tool.tot")"
done
awk -v n="$N" -v s="$(spread "$BT/sluice.tot" | cut -f2)" -v a="$(spread "$BT/nix.tot" | cut -f2)" \
    'BEGIN { printf "%s\tratio\t%.2f\n", n, s / a }'

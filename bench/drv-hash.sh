#!/usr/bin/env bash
# bench/drv-hash.sh: derivation hashing throughput.  For the layered DAG of
# bench/dag.nix (a copy of the lab generator) with N nodes, instantiated with a fresh
# salt, it times on one core (taskset -c 0) what sluice does for every drv of the
# closure: parse the ATerm, hashDerivationModulo unmasked (memoised, as for an input)
# and masked, and the output paths (checked against the drv) -- bench/drvhash_bench.c,
# built here from src/nix and src/util with -O2.  Next to it, in the same run,
# `nix show-derivation` over the same set of drvs (parse + JSON, its nearest CLI
# equivalent).
#
#   bench/drv-hash.sh [N...]          default: 5000 100000;  REPS=3 (at least 3)
#
# The two sides alternate, REPS times each (sluice, nix, sluice, nix, ...); Nix's
# stderr is kept in bench/out/logs/ and lock contention in it fails the script.
# Columns: n tool phase drvs kb rep seconds drvs_per_s us_per_kb (one row per run and
# phase), then per n and tool "n spread TOOL min median max" of the parse+hash (sluice)
# and show-derivation (nix) seconds, and "n ratio <median nix / median sluice>".
#   phases (sluice): read (files into memory, not counted elsewhere), parse, hash
#   (modulo + output paths of parsed drvs), parse+hash (the whole job);
#   nix: show-derivation (one xargs run, wall time incl. process start).
#
# Measured (2-core VM, other jobs running; sluice CPU seconds, best of 3):
#   n=5000    parse+hash 257,000 drvs/s (7.1 us/KB; parse alone 962,000/s, hash 334,000/s)
#             nix show-derivation 4,700 drvs/s (387 us/KB)
#   n=100000  parse+hash 159,000 drvs/s (11.3 us/KB; parse 582,000/s, hash 186,000/s)
#             nix show-derivation 4,700 drvs/s (386 us/KB)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source "$ROOT/bench/lib.sh" # spread, contention, keep_log
OUT=$ROOT/bench/out
REPS=${REPS:-3}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
mkdir -p "$OUT"
NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
    'substituters =' 'build-users-group =' 'sandbox = false' 'fsync-metadata = false')
export NIX_CONFIG
NIX_CONF_DIR=$(mktemp -d)
export NIX_CONF_DIR
trap 'rm -rf "$NIX_CONF_DIR"' EXIT
[ $# -gt 0 ] || set -- 5000 100000
STAMP=$(date +%Y%m%d-%H%M%S)

echo "building bench/out/drvhash_bench" >&2
# shellcheck disable=SC2046
cc -std=c17 -O2 -D_GNU_SOURCE -Isrc -o "$OUT/drvhash_bench" bench/drvhash_bench.c \
    src/util/*.c src/nix/*.c $(pkg-config --cflags --libs libcrypto jansson) -pthread -lm
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"

printf 'n\ttool\tphase\tdrvs\tkb\trep\tseconds\tdrvs_per_s\tus_per_kb\n'
for n in "$@"; do
    salt="bench-$(date +%s%N)"
    echo "n=$n: nix-instantiate (salt $salt)" >&2
    nix-instantiate bench/dag.nix --argstr n "$n" --argstr salt "$salt" >"$OUT/top-$n.txt" 2>/dev/null
    # one nix-store -qR per xargs batch: keep first occurrences (inputs stay first)
    xargs nix-store -qR <"$OUT/top-$n.txt" | grep '\.drv$' | awk '!seen[$0]++' >"$OUT/drvs-$n.txt"
    kb=$(xargs cat <"$OUT/drvs-$n.txt" | wc -c | awk '{printf "%.0f", $1 / 1024}')
    drvs=$(wc -l <"$OUT/drvs-$n.txt")
    echo "n=$n: $drvs drvs" >&2
    : >"$OUT/sl-$n.s"
    : >"$OUT/nix-$n.s"
    for rep in $(seq 1 "$REPS"); do
        $PIN "$OUT/drvhash_bench" "$OUT/drvs-$n.txt" 1 | tail -n +2 |
            awk -v n="$n" -v rep="$rep" -F '\t' 'BEGIN { OFS = "\t" } { $4 = rep; print n, "sluice", $0 }' \
            >"$OUT/sl-$n.rows"
        cat "$OUT/sl-$n.rows"
        awk -F '\t' '$3 == "parse+hash" { print $7 }' "$OUT/sl-$n.rows" >>"$OUT/sl-$n.s"
        t0=$(date +%s%N)
        $PIN xargs nix show-derivation <"$OUT/drvs-$n.txt" >/dev/null 2>"$OUT/nix-$n.err"
        t1=$(date +%s%N)
        keep_log "$OUT/nix-$n.err" "drv-hash-$STAMP-$n-$rep-nix.err"
        contention "$OUT/nix-$n.err" && exit 1
        awk -v n="$n" -v d="$drvs" -v kb="$kb" -v ns=$((t1 - t0)) -v rep="$rep" 'BEGIN {
            s = ns / 1e9; printf "%s\tnix\tshow-derivation\t%d\t%s\t%s\t%.4f\t%.0f\t%.3f\n", n, d, kb, rep, s, d / s, s * 1e6 / kb }'
        awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.4f\n", ns / 1e9 }' >>"$OUT/nix-$n.s"
    done
    printf '%s\tspread\tsluice\t%s\n' "$n" "$(spread "$OUT/sl-$n.s")"
    printf '%s\tspread\tnix\t%s\n' "$n" "$(spread "$OUT/nix-$n.s")"
    awk -v n="$n" -v a="$(spread "$OUT/nix-$n.s" | cut -f2)" -v b="$(spread "$OUT/sl-$n.s" | cut -f2)" \
        'BEGIN { printf "%s\tratio\t%.1f\n", n, a / b }'
done

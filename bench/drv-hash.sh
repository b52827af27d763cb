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
#   bench/drv-hash.sh [N...]          default: 5000 100000;  REPS=3 best-of reps
#
# Columns: n tool phase drvs kb reps seconds drvs_per_s us_per_kb
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
OUT=$ROOT/bench/out
REPS=${REPS:-3}
mkdir -p "$OUT"
NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
    'substituters =' 'build-users-group =' 'sandbox = false' 'fsync-metadata = false')
export NIX_CONFIG
NIX_CONF_DIR=$(mktemp -d)
export NIX_CONF_DIR
trap 'rm -rf "$NIX_CONF_DIR"' EXIT
[ $# -gt 0 ] || set -- 5000 100000

echo "building bench/out/drvhash_bench" >&2
# shellcheck disable=SC2046
cc -std=c17 -O2 -D_GNU_SOURCE -Isrc -o "$OUT/drvhash_bench" bench/drvhash_bench.c \
    src/util/*.c src/nix/*.c $(pkg-config --cflags --libs libcrypto jansson) -pthread -lm
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"

printf 'n\ttool\tphase\tdrvs\tkb\treps\tseconds\tdrvs_per_s\tus_per_kb\n'
for n in "$@"; do
    salt="bench-$(date +%s%N)"
    echo "n=$n: nix-instantiate (salt $salt)" >&2
    nix-instantiate bench/dag.nix --argstr n "$n" --argstr salt "$salt" >"$OUT/top-$n.txt" 2>/dev/null
    # one nix-store -qR per xargs batch: keep first occurrences (inputs stay first)
    xargs nix-store -qR <"$OUT/top-$n.txt" | grep '\.drv$' | awk '!seen[$0]++' >"$OUT/drvs-$n.txt"
    echo "n=$n: $(wc -l <"$OUT/drvs-$n.txt") drvs; sluice" >&2
    $PIN "$OUT/drvhash_bench" "$OUT/drvs-$n.txt" "$REPS" | tail -n +2 | sed "s/^/$n\tsluice\t/"
    kb=$(xargs cat <"$OUT/drvs-$n.txt" | wc -c | awk '{printf "%.0f", $1 / 1024}')
    drvs=$(wc -l <"$OUT/drvs-$n.txt")
    echo "n=$n: nix show-derivation" >&2
    t0=$(date +%s%N)
    $PIN xargs nix show-derivation <"$OUT/drvs-$n.txt" >/dev/null
    t1=$(date +%s%N)
    awk -v n="$n" -v d="$drvs" -v kb="$kb" -v ns=$((t1 - t0)) 'BEGIN {
        s = ns / 1e9; printf "%s\tnix\tshow-derivation\t%d\t%s\t1\t%.4f\t%.0f\t%.3f\n", n, d, kb, s, d / s, s * 1e6 / kb }'
done

#!/usr/bin/env bash
# bench/propagate.sh: how long the graph lock is held to propagate a failure over a
# large step graph (bench/propagate_bench.c, built here against build/'s objects with
# -O2).  The graph: LAYERS layers of WIDTH steps, each depending on every step of the
# layer below; a bottom step fails and with it every step and build.  Two sizes run
# interleaved, REPS times each: the large one (default 120 x 100: 12,000 steps,
# 1,190,000 edges) and the same width with a tenth of the layers as the baseline,
# so the ratio shows how the time grows with the failed subgraph (10x edges: ~10 for
# linear).  No Nix involved.
#
#   bench/propagate.sh [LAYERS WIDTH]         REPS=3
#
# Columns (one row per run): steps edges rep lock_ms; then a summary per size
# (min/median/max ms) and the ratio of the medians.
#
# Measured (2-core VM, other jobs running; make -j2 build/):
#   before (a linear membership test per visited edge, one rdeps removal per edge):
#     12,000 steps / 1,190,000 edges: lock held 3,206 / 4,317 / 4,383 ms (min/median/max)
#     1,200 steps / 110,000 edges: 62.6 / 64.5 / 74.2 ms
#   after (visit marks; each dependency outside the failed set has its rdeps compacted
#   once): 12,000 / 1,190,000: 9.8 / 9.9 / 12.0 ms;  1,200 / 110,000: 0.60 / 0.64 / 0.65 ms
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
REPS=${REPS:-3}
LAYERS=${1:-120}
WIDTH=${2:-100}
SMALL=$(((LAYERS + 9) / 10))
mkdir -p "$OUT"
[ -x build/sluice ] || { echo "run make first" >&2; exit 1; }
objs=$(find build/src -name '*.o' ! -path 'build/src/cli/main.o' | sort)
echo "building bench/out/propagate_bench" >&2
# shellcheck disable=SC2086
cc -std=c17 -O2 -g -D_GNU_SOURCE -Isrc -pthread -o "$OUT/propagate_bench" bench/propagate_bench.c \
    $objs build/gen/http_static.o $(pkg-config --libs sqlite3 libpq libcrypto jansson libmicrohttpd libzstd) -lm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'steps\tedges\trep\tlock_ms\n'
for rep in $(seq 1 "$REPS"); do
    "$OUT/propagate_bench" "$TMP/big$rep" "$LAYERS" "$WIDTH" 1 | sed "s/\t1\t/\t$rep\t/" | tee -a "$TMP/big"
    "$OUT/propagate_bench" "$TMP/small$rep" "$SMALL" "$WIDTH" 1 | sed "s/\t1\t/\t$rep\t/" | tee -a "$TMP/small"
done
stats() { cut -f4 "$1" | sort -g | awk '{v[NR]=$1} END {printf "%.2f\t%.2f\t%.2f", v[1], v[int((NR+1)/2)], v[NR]}'; }
printf '\n# size\tmin_ms\tmedian_ms\tmax_ms\n'
printf '%s\t%s\n' "$(head -1 "$TMP/big" | cut -f1,2 | tr '\t' /)" "$(stats "$TMP/big")"
printf '%s\t%s\n' "$(head -1 "$TMP/small" | cut -f1,2 | tr '\t' /)" "$(stats "$TMP/small")"
mb=$(stats "$TMP/big" | cut -f2)
ms=$(stats "$TMP/small" | cut -f2)
awk -v b="$mb" -v s="$ms" 'BEGIN { printf "# ratio of medians (large / baseline): %.1f\n", (s > 0 ? b / s : 0) }'

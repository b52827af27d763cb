#!/usr/bin/env bash
# bench/cache.sh: publishing to a binary cache.  `sluice cache publish` against
# `nix copy --to file://...` of the same paths (bench/cache.nix: NBIG outputs of BIG_MIB
# MiB of random bytes plus NSMALL small outputs), into a fresh file:// cache each time,
# REPS runs of each tool interleaved, for each compression; then the peak RSS of
# publishing one LARGE_MIB output.
#
#   bench/cache.sh [NBIG BIG_MIB NSMALL LARGE_MIB REPS]      defaults: 4 8 100 256 3
#   COMPRESSIONS="zstd xz" (default); COMP:LEVEL sets compression-level (e.g. xz:3)
#   LARGE_ONLY=1: only sluice's upload of the LARGE_MIB output (the RSS figure)
#   The issue's sizes: bench/cache.sh 20 50 1000 2048 3 (long with xz: liblzma compresses
#   random bytes at a few MB/s per core, for both tools).
#
# Rows: what  compression  tool  rep  wall_s  max_rss_kb
#   what = graph (the NBIG + NSMALL paths) or large (the one LARGE_MIB output);
# then per (what, compression, tool): min/median/max wall and the ratio of medians
# sluice / nix copy (target <= 1.0), and the largest RSS.
source "$(dirname "$0")/lib.sh"
NBIG=${1:-4} BIG_MIB=${2:-8} NSMALL=${3:-100} LARGE_MIB=${4:-256} REPS=${5:-3}
COMPRESSIONS=${COMPRESSIONS:-zstd xz}
bench_setup
salt=bench-cache-$(date +%s%N)
args=(--argstr salt "$salt" --arg nbig "$NBIG" --arg bigMiB "$BIG_MIB" --arg nsmall "$NSMALL"
    --arg largeMiB "$LARGE_MIB")
echo "building the outputs with nix-build ($NBIG x $BIG_MIB MiB, $NSMALL small, $LARGE_MIB MiB)" >&2
mapfile -t GRAPH < <(nix-build bench/cache.nix "${args[@]}" -A big -A small --no-out-link 2>/dev/null)
LARGE=$(nix-build bench/cache.nix "${args[@]}" -A large --no-out-link 2>/dev/null)
[ ${#GRAPH[@]} -eq $((NBIG + NSMALL)) ] || { echo "expected $((NBIG + NSMALL)) paths" >&2; exit 1; }

ROWS=$BT/rows.tsv
: >"$ROWS"
# run WHAT COMP TOOL REP PATH...
run() {
    local what=$1 comp=$2 tool=$3 rep=$4 dir=$BT/c-$1-${2/:/-}-$3-$4 t params
    shift 4
    params="compression=${comp%%:*}"
    [ "$comp" = "${comp#*:}" ] || params+="&compression-level=${comp#*:}"
    rm -rf "$dir"
    case $tool in
    sluice) /usr/bin/time -o "$BT/time" -f '%e %M' "$SLUICE" cache publish \
        --store-uri "file://$dir?$params" "$@" >/dev/null ;;
    nix-copy) /usr/bin/time -o "$BT/time" -f '%e %M' nix copy \
        --to "file://$dir?$params" "$@" >/dev/null 2>&1 ;;
    esac
    t=$(tail -1 "$BT/time")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$what" "$comp" "$tool" "$rep" ${t} | tee -a "$ROWS"
    rm -rf "$dir"
}

printf 'what\tcompression\ttool\trep\twall_s\tmax_rss_kb\n'
for comp in $COMPRESSIONS; do
    if [ -n "${LARGE_ONLY:-}" ]; then
        run large "$comp" sluice 1 "$LARGE"
        continue
    fi
    for rep in $(seq "$REPS"); do
        run graph "$comp" sluice "$rep" "${GRAPH[@]}"
        run graph "$comp" nix-copy "$rep" "${GRAPH[@]}"
    done
    run large "$comp" sluice 1 "$LARGE"
    run large "$comp" nix-copy 1 "$LARGE"
done

echo
printf 'what\tcompression\ttool\tmin_s\tmedian_s\tmax_s\tmax_rss_kb\tratio_median\n'
awk -F'\t' '
{ k = $1 "\t" $2 "\t" $3; n[k]++; v[k, n[k]] = $5; if ($6 > rss[k]) rss[k] = $6; keys[k] = 1 }
function med(k,   i, j, t, a, c) {
    c = n[k]; for (i = 1; i <= c; i++) a[i] = v[k, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    lo[k] = a[1]; hi[k] = a[c]; return a[int((c + 1) / 2)]
}
END {
    for (k in keys) m[k] = med(k)
    for (k in keys) {
        split(k, p, "\t"); other = p[1] "\t" p[2] "\tnix-copy"
        r = (p[3] == "sluice" && m[other] > 0) ? sprintf("%.2f", m[k] / m[other]) : ""
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", k, lo[k], m[k], hi[k], rss[k], r
    }
}' "$ROWS" | sort

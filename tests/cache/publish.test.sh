#!/usr/bin/env bash
# `sluice cache publish` against real Nix 2.8: what it writes for input-addressed and
# content-addressed paths is byte-for-byte what `nix copy --to file://` writes (narinfo,
# xz NAR, .ls listing); `nix store verify` accepts it with the right key and rejects an
# input-addressed path with another; a clean store with require-sigs and --max-jobs 0
# substitutes every job of the demo graph (the CA ones through realisations) with xz,
# zstd and no compression; `nix log --store` reads an uploaded log; bad URLs are refused;
# a path whose files are gone fails with Nix's own error.
source "$(dirname "$0")/../harness/env.sh"
need_nix
[ "$(id -u)" = 0 ] || skip "needs root (a chroot store)"
cd "$T"

nix-store --generate-binary-cache-key k1 k1.sk k1.pk
nix-store --generate-binary-cache-key k2 k2.sk k2.pk
PK1=$(cat k1.pk) PK2=$(cat k2.pk)
salt=cp$(date +%s%N)
DEMO=$ROOT/examples/demo.nix
ATTRS=(src greeting caBase caNext report)

# real Nix builds the graph in the local store
nix-build "$DEMO" --argstr salt "$salt" --no-out-link >/dev/null 2>build.log || {
    cat build.log
    fail "nix-build of the demo graph"
}
declare -A DRV
for a in "${ATTRS[@]}"; do
    DRV[$a]=$(nix-instantiate "$DEMO" --argstr salt "$salt" -A "$a" 2>/dev/null)
done
# a tree with every kind of NAR entry
mkdir -p tree/sub/deeper && printf 'x\n' >tree/a && printf '#!/bin/sh\n' >tree/sub/run
chmod +x tree/sub/run && ln -s a tree/link && printf '' >tree/sub/deeper/empty
printf 'quote"back\\slash\n' >'tree/sub/we ird=na+me' && mkdir tree/emptydir
printf 'x' >'tree/sub/q"b\s' && printf 'y' >"tree/sub/tab$(printf '\t')and$(printf '\001')ctl"
TREE=$(nix-store --add tree)
OUTS=($TREE $(nix-store -r "${DRV[greeting]}" "${DRV[report]}" "${DRV[caNext]}" 2>/dev/null))
[ ${#OUTS[@]} -eq 5 ] || fail "expected 5 paths, got ${OUTS[*]}"

# --- the same bytes as nix copy
nix copy --to "file://$T/ref?secret-key=$T/k1.sk&write-nar-listing=1" "${OUTS[@]}" 2>copy.log
"$SLUICE" cache publish --store-uri "file://$T/mine?secret-key=$T/k1.sk&write-nar-listing=1" \
    "${OUTS[@]}" >pub.out || fail "cache publish: $(cat pub.out)"
grep -q "^published 5 of 5 paths" pub.out || fail "first publish: $(cat pub.out)"
diff -r -x nix-cache-info ref mine || fail "sluice's cache differs from nix copy's"
assert_eq "$(cat mine/nix-cache-info)" "$(printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50')" \
    "nix-cache-info"
[ -z "$(find mine -name '.tmp-*')" ] || fail "temporary files left behind"
"$SLUICE" cache publish --store-uri "file://$T/mine?secret-key=$T/k1.sk&write-nar-listing=1" \
    "${OUTS[@]}" >pub2.out
grep -q "^published 0 of 5 paths" pub2.out || fail "second publish uploaded again: $(cat pub2.out)"

# --- every job, through its derivation (realisations for the CA ones), three compressions
for comp in xz zstd none; do
    url="file://$T/c-$comp?secret-key=$T/k1.sk&compression=$comp"
    "$SLUICE" cache publish --store-uri "$url" "${DRV[@]}" >"pub-$comp.out" ||
        fail "publish ($comp): $(cat "pub-$comp.out")"
    # (a) every path verifies with k1
    nix store verify --store "file://$T/c-$comp" --trusted-public-keys "$PK1" --all \
        >"verify-$comp.log" 2>&1 || fail "nix store verify ($comp): $(cat "verify-$comp.log")"
    # (b) a clean store substitutes every job without building
    rm -rf "clean-$comp"
    for a in "${ATTRS[@]}" greeting.doc; do
        nix build --store "$T/clean-$comp" --substituters "file://$T/c-$comp" \
            --trusted-public-keys "$PK1" --option require-sigs true --max-jobs 0 \
            -f "$DEMO" --argstr salt "$salt" "$a" --no-link --json >"sub-$comp-$a.json" \
            2>"sub-$comp-$a.log" || fail "substituting $a ($comp): $(tail -5 "sub-$comp-$a.log")"
        want=$(nix build -f "$DEMO" --argstr salt "$salt" "$a" --no-link --json |
            jq -r '.[0].outputs[]')
        got=$(jq -r '.[0].outputs[]' "sub-$comp-$a.json")
        assert_eq "$got" "$want" "outputs of $a substituted ($comp)"
        for p in $got; do
            [ -e "$T/clean-$comp$p" ] || fail "$p missing in the clean store"
        done
    done
done
ls c-zstd/nar | grep -q '\.nar\.zst$' || fail "no .nar.zst in the zstd cache"
ls c-none/nar | grep -q '[a-z0-9]\.nar$' || fail "no .nar in the uncompressed cache"
[ -n "$(ls c-xz/realisations)" ] || fail "no realisations"
for f in c-xz/realisations/*.doi; do
    jq -e '.signatures | length == 1' "$f" >/dev/null || fail "$f is not signed once"
done

# (a) another key: input-addressed paths fail verification (content-addressed ones are
# trusted by their content)
greeting_out=$(nix-store -r "${DRV[greeting]}" 2>/dev/null | head -1)
if nix store verify --store "file://$T/c-xz" --trusted-public-keys "$PK2" "$greeting_out" \
    >verify-k2.log 2>&1; then
    fail "an input-addressed path verified with the wrong key"
fi
grep -q "untrusted" verify-k2.log || fail "wrong-key failure: $(cat verify-k2.log)"
# and a clean store refuses to substitute it
if nix build --store "$T/clean-k2" --substituters "file://$T/c-xz" --trusted-public-keys "$PK2" \
    --option require-sigs true --max-jobs 0 -f "$DEMO" --argstr salt "$salt" greeting \
    --no-link >sub-k2.log 2>&1; then
    fail "substituted with the wrong key"
fi

# (d) logs, plain and zstd-compressed; Nix finds a path's log under its deriver (for a
# CA output: the resolved derivation that built it)
report_out=$(nix-store -r "${DRV[report]}" 2>/dev/null)
report_deriver=$(sed -n 's/^Deriver: //p' "c-xz/$(basename "$report_out" | cut -c1-32).narinfo")
[ -n "$report_deriver" ] || fail "no Deriver in the report's narinfo"
printf 'line one of the log\nline two\n' >build.txt
printf 'the report log\n' | zstd -q >report.zst
"$SLUICE" cache publish --store-uri "file://$T/c-xz" --log "${DRV[greeting]}=build.txt" \
    --log "/nix/store/$report_deriver=report.zst" >log.out || fail "publish log: $(cat log.out)"
assert_eq "$(nix log --store "file://$T/c-xz" "$greeting_out" 2>/dev/null)" \
    "$(printf 'line one of the log\nline two')" "nix log of greeting"
assert_eq "$(nix log --store "file://$T/c-xz" "$report_out" 2>/dev/null)" "the report log" \
    "nix log of report"

# bad URLs and items
bad() {
    local want=$1
    shift
    if "$SLUICE" cache publish "$@" >bad.out 2>&1; then
        fail "accepted: $*"
    fi
    grep -q -- "$want" bad.out || fail "for $*: expected '$want' in: $(cat bad.out)"
}
bad "unsupported scheme 's3'" --store-uri "s3://bucket" "$TREE"
bad "secret key" --store-uri "file://$T/x?secret-key=$T/nonexistent" "$TREE"
bad "not a Nix secret key" --store-uri "file://$T/x?secret-key=$T/k1.pk" "$TREE"
bad "is not supported (xz, zstd, none)" --store-uri "file://$T/x?compression=br" "$TREE"
bad "no binary cache given" "$TREE"
bad "not a valid store path\|store path" --store-uri "file://$T/x" /tmp/not-a-store-path
[ ! -e "$T/x" ] || fail "a refused URL created the cache"

# a path registered in the store whose files are gone: Nix's own error, nothing published
printf 'gone %s\n' "$salt" >gone
GONE=$(nix-store --add gone)
chmod -R u+w "$GONE" && rm -rf "$GONE"
bad "NAR of $GONE from .*: getting status of '$GONE': No such file or directory" \
    --store-uri "file://$T/gone-cache?secret-key=$T/k1.sk" "$GONE"
[ -z "$(ls "$T/gone-cache"/*.narinfo 2>/dev/null)" ] || fail "a narinfo of the unreadable $GONE was written"
nix-store --delete "$GONE" >/dev/null 2>&1 || fail "cannot drop $GONE again"
echo "ok"

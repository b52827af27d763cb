#!/usr/bin/env bash
# `sluice drv outputs` and `sluice drv resolve` on the Nix 2.8 vectors
# (tests/data/nix/drv-hash): the vectors are instantiated into the store (same drv
# paths as when they were recorded), every output line must match facts.json (path or
# downstream placeholder, realisation id), and the four resolutions Nix performed are
# reproduced byte for byte, with the inputs given on the command line or, for static
# outputs, found by sluice itself.  Also the usage errors.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v python3 >/dev/null || skip "python3 not installed"
V=$ROOT/tests/data/nix/drv-hash

cp -r "$V/vectors.nix" "$V/srcdir" "$T/"
chmod -R u+w "$T/srcdir"
names="ia-simple ia-multi fo-flat fo-flat-sha1 fo-rec ia-deps ia-txt ca-a ca-b ca-c ia-on-ca ca-multi"
attrs=()
for n in $names; do attrs+=(-A "$n"); done
nix-instantiate "$T/vectors.nix" "${attrs[@]}" 2>"$T/inst.err" | sed 's/!.*//' >"$T/drvs.txt" ||
    fail "instantiate: $(cat "$T/inst.err")"
# expected lines from the facts, each drv's block under "# <drv path>"
# shellcheck disable=SC2086
python3 -c '
import json, sys
for n in sys.argv[2:]:
    f = json.load(open("%s/%s/facts.json" % (sys.argv[1], n)))
    print("#", f["drvPath"])
    for o in sorted(f["outputs"]):
        v = f["outputs"][o]
        print("%s\t%s\t%s" % (o, v["path"] or v["downstreamPlaceholder"], f["realisationIds"][o]))
' "$V" $names >"$T/want-all.txt"
grep '^#' "$T/want-all.txt" | cut -c3- | diff - "$T/drvs.txt" >/dev/null ||
    fail "drv paths differ from the vectors"
: >"$T/got-all.txt"
while read -r p; do
    echo "# $p" >>"$T/got-all.txt"
    "$SLUICE" drv outputs "$p" >>"$T/got-all.txt" || fail "drv outputs $p"
    # a file named like the drv, outside the store, gives the same
    cp "$p" "$T/${p##*/}"
    cmp -s <("$SLUICE" drv outputs "$T/${p##*/}") <("$SLUICE" drv outputs "$p") ||
        fail "drv outputs of a copy of $p"
done <"$T/drvs.txt"
diff "$T/want-all.txt" "$T/got-all.txt" >/dev/null ||
    fail "drv outputs: $(diff "$T/want-all.txt" "$T/got-all.txt")"
echo "drv outputs: 12 vectors agree"

# resolutions recorded from Nix
for n in ca-b ca-c ia-on-ca ca-multi; do
    args=$(python3 - "$V/$n/resolved/facts.json" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))
for k, v in sorted(f["recomputedFromOriginal"]["inputOutputsUsed"].items()):
    print("--input=%s=%s" % (k, v))
EOF
)
    orig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/$n/facts.json")
    want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/$n/resolved/facts.json")
    # shellcheck disable=SC2086
    "$SLUICE" drv resolve "$orig" $args >"$T/res.txt" || fail "drv resolve $n"
    assert_eq "$(head -1 "$T/res.txt")" "$want" "resolved path of $n"
    tail -n +2 "$T/res.txt" | head -c -1 | cmp -s - "$V/$n/resolved/${want##*/}" ||
        fail "resolved ATerm of $n differs"
done
echo "drv resolve: 4 resolutions reproduced"

# ca-c's only input is input-addressed: sluice finds its path without --input
orig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/ca-c/facts.json")
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/ca-c/resolved/facts.json")
assert_eq "$("$SLUICE" drv resolve "$orig" | head -1)" "$want" "ca-c resolved with static inputs"

# ca-b without its floating input: a clear error
orig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/ca-b/facts.json")
if "$SLUICE" drv resolve "$orig" >"$T/out.txt" 2>"$T/err.txt"; then fail "resolve without inputs succeeded"; fi
grep -q "no output 'out' of /nix/store/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv" "$T/err.txt" ||
    fail "unexpected message: $(cat "$T/err.txt")"

# --force on ia-deps: inputs folded in, its own output kept
orig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drvPath"])' "$V/ia-deps/facts.json")
"$SLUICE" drv resolve --force "$orig" >"$T/force.txt" || fail "drv resolve --force ia-deps"
grep -q '^Derive(\[("out","/nix/store/dks0h8h7xr6l1yyl8smw390ajq5c01dz-ia-deps","","")\],\[\],\["/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple","/nix/store/844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir","/nix/store/p244b91v99b3wqr3kpx71cqfi1z5qfzz-ia-multi-dev","/nix/store/wwxsp5alchk49n52d6k8bl3578zd72b7-fo-flat"\]' "$T/force.txt" ||
    fail "force resolution of ia-deps: $(cat "$T/force.txt")"

# usage errors exit 2
for args in "drv outputs" "drv outputs a b" "drv resolve" "drv resolve $orig --input nonsense" \
    "drv resolve $orig --bogus"; do
    set +e
    # shellcheck disable=SC2086
    "$SLUICE" $args >/dev/null 2>&1
    rc=$?
    set -e
    assert_eq "$rc" 2 "exit status of '$args'"
done
# a file that is not a derivation: exit 1 with the reason
printf 'Derive([' >"$T/00000000000000000000000000000000-bad.drv"
set +e
"$SLUICE" drv outputs "$T/00000000000000000000000000000000-bad.drv" 2>"$T/err.txt"
rc=$?
set -e
assert_eq "$rc" 1 "exit status on a truncated drv"
grep -q "byte" "$T/err.txt" || fail "no offset in: $(cat "$T/err.txt")"
echo ok

#!/usr/bin/env bash
# `sluice cache publish` to an HTTP binary cache (nginx with WebDAV PUT on loopback, from
# tests/harness/nginx.sh): Nix verifies the paths through http://, a clean store with
# require-sigs and --max-jobs 0 substitutes every job (CA ones through realisations) and
# reads a log; while the server answers 500 the publish fails with the status in its
# message and leaves no narinfo whose NAR is missing; once it works again the publish
# completes.
source "$(dirname "$0")/../harness/env.sh"
need_nix
[ "$(id -u)" = 0 ] || skip "needs root (a chroot store)"
command -v nginx >/dev/null || skip "nginx not installed"
cd "$T"
eval "$(bash "$ROOT/tests/harness/nginx.sh" start "$T/nginx")"
trap 'rc=$?; bash "$ROOT/tests/harness/nginx.sh" stop "$T/nginx"; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT

nix-store --generate-binary-cache-key k1 k1.sk k1.pk
PK1=$(cat k1.pk)
salt=ch$(date +%s%N)
DEMO=$ROOT/examples/demo.nix
ATTRS=(src greeting greeting.doc caBase caNext report)
nix-build "$DEMO" --argstr salt "$salt" --no-out-link >/dev/null 2>build.log || {
    cat build.log
    fail "nix-build of the demo graph"
}
DRVS=()
for a in src greeting caBase caNext report; do
    DRVS+=("$(nix-instantiate "$DEMO" --argstr salt "$salt" -A "$a" 2>/dev/null)")
done
URL="$NGINX_URL/cache"

# the server fails: a clear error, nothing half-published
touch "$NGINX_DIR/fail"
if "$SLUICE" cache publish --store-uri "$URL?secret-key=$T/k1.sk" "${DRVS[@]}" >fail.out 2>&1; then
    fail "publish succeeded against a failing server"
fi
grep -q "HTTP status 500" fail.out || fail "no status in: $(cat fail.out)"
rm "$NGINX_DIR/fail"

# now it works
"$SLUICE" cache publish --store-uri "$URL?secret-key=$T/k1.sk&write-nar-listing=1" "${DRVS[@]}" \
    >pub.out || fail "publish: $(cat pub.out)"
grep -q "^published 6 of 6 paths.*3 of 3 realisations" pub.out || fail "publish: $(cat pub.out)"
ROOTDIR=$NGINX_DIR/root/cache
for f in "$ROOTDIR"/*.narinfo; do
    nar=$(sed -n 's/^URL: //p' "$f")
    [ -s "$ROOTDIR/$nar" ] || fail "$f names $nar, which is missing"
done
[ "$(ls "$ROOTDIR"/*.ls | wc -l)" = 6 ] || fail "listings missing"
paths=()
for f in "$ROOTDIR"/*.narinfo; do paths+=("$(sed -n 's/^StorePath: //p' "$f")"); done
nix store verify --store "$URL" --trusted-public-keys "$PK1" "${paths[@]}" >verify.log 2>&1 ||
    fail "nix store verify: $(cat verify.log)"

# a clean store substitutes every job over HTTP
for a in "${ATTRS[@]}"; do
    nix build --store "$T/clean" --substituters "$URL" --trusted-public-keys "$PK1" \
        --option require-sigs true --max-jobs 0 -f "$DEMO" --argstr salt "$salt" "$a" \
        --no-link --json >"sub-$a.json" 2>"sub-$a.log" ||
        fail "substituting $a: $(tail -5 "sub-$a.log")"
    want=$(nix build -f "$DEMO" --argstr salt "$salt" "$a" --no-link --json | jq -r '.[0].outputs[]')
    assert_eq "$(jq -r '.[0].outputs[]' "sub-$a.json")" "$want" "outputs of $a"
    [ -e "$T/clean$want" ] || fail "$want missing in the clean store"
done

# a log over HTTP
greeting_out=$(nix build -f "$DEMO" --argstr salt "$salt" greeting --no-link --json | jq -r '.[0].outputs.out')
printf 'http log line\n' >log.txt
"$SLUICE" cache publish --store-uri "$URL" --log "${DRVS[1]}=log.txt" >log.out ||
    fail "publish log: $(cat log.out)"
assert_eq "$(nix log --store "$URL" "$greeting_out" 2>/dev/null)" "http log line" "nix log over HTTP"

# published again: every path is found by one HEAD each, nothing uploaded
"$SLUICE" cache publish --store-uri "$URL?secret-key=$T/k1.sk" "${DRVS[@]}" >pub2.out
grep -q "^published 0 of 6 paths.*0 of 3 realisations" pub2.out || fail "again: $(cat pub2.out)"
[ "$(grep -c '"PUT ' "$NGINX_DIR/logs/access.log")" -gt 0 ] || fail "no PUT in the access log"
echo ok

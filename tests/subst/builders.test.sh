#!/usr/bin/env bash
# builders-use-substitutes on the harness's ssh hosts (SQLite): `dep` is in a file://
# cache made by real Nix (`nix copy --to file://...?secret-key=...`) and in the local
# store.  b1 (ssh-ng://) and b2 (ssh://) have the cache as their own substituter and
# fetch `dep` themselves: nothing is copied to them (their copied-bytes counters stay
# 0); b3 (ssh-ng://) has no cache and gets `dep` copied (its counter grows by dep's
# NAR size).  Without builders-use-substitutes b1 gets it copied too.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
FILE=$ROOT/tests/subst/nix/graph.nix
farm_lab 3
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
CACHE=$T/cache
# each host reads /nix/host.conf (its own store directory): b1 and b2 get the cache
echo '!include /nix/host.conf' >>"$SLUICE_LAB/nixconf/nix.conf"
for i in 1 2; do
    printf 'substituters = file://%s\ntrusted-public-keys = %s\n' "$CACHE" "$(cat "$T/k1.pk")" \
        >"$SLUICE_LAB/b$i/host.conf"
done

# copied BI: the copied-bytes counter of host bI in the runner's machines snapshot
copied() {
    jq -r --arg h "b$1" '.machines | to_entries[] | select(.key | test("//" + $h + "$"))
        | .value.bytesCopiedTo' "$SLUICE_STATE_DIR/machines.json"
}

# run_all ATTR...: submit, run until every build is finished, leave the snapshot fresh
run_all() {
    local ids id a args=()
    for a in "$@"; do args+=(-A "$a"); done
    ids=$("$SLUICE" submit "$FILE" --argstr salt "$SALT" "${args[@]}") || fail "submit"
    run_bg --machines "$T/machines" "${FLAGS[@]}"
    for id in $ids; do
        wait_until 60 build_done "$id" || fail "build $id did not finish: $(steps_of "$id")"
        assert_eq "$(build_row "$id")" "1|0" "build $id"
    done
    sleep 2.5 # machines.json is rewritten every two seconds
}

machines_file "ssh-ng://b1 x86_64-linux - 1 1 hop1" "ssh://b2 x86_64-linux - 1 1 hop2" \
    "ssh-ng://b3 x86_64-linux - 1 1 hop3"
dep=$(nix-store -r "$(nix-instantiate "$FILE" --argstr salt "$SALT" -A dep 2>/dev/null)" 2>/dev/null)
nix copy --to "file://$CACHE?secret-key=$T/k1.sk&compression=none" "$dep" 2>/dev/null || fail "nix copy"
size=$(nix path-info --json "$dep" | jq '.[0].narSize')

FLAGS=(--builders-use-substitutes true)
run_all useA useB useC
for i in 1 2 3; do
    [ -e "$SLUICE_LAB/b$i/store/${dep#/nix/store/}" ] || fail "dep not on b$i"
done
assert_eq "$(copied 1)" 0 "bytes copied to b1 (substituted itself, ssh-ng)"
assert_eq "$(copied 2)" 0 "bytes copied to b2 (substituted itself, ssh)"
assert_eq "$(copied 3)" "$size" "bytes copied to b3 (no cache)"
run_stop

# without builders-use-substitutes the coordinator copies it
SALT=$SALT-off
dep=$(nix-store -r "$(nix-instantiate "$FILE" --argstr salt "$SALT" -A dep 2>/dev/null)" 2>/dev/null)
nix copy --to "file://$CACHE?secret-key=$T/k1.sk&compression=none" "$dep" 2>/dev/null || fail "nix copy"
FLAGS=()
run_all useA
assert_eq "$(copied 1)" "$(nix path-info --json "$dep" | jq '.[0].narSize')" "bytes copied to b1 without builders-use-substitutes"
run_stop

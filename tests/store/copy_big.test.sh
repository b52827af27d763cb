#!/usr/bin/env bash
# `sluice store copy` of a 200 MiB store path across three stores with their own
# /nix: a private local store -> ssh-ng://b1 (framed AddToStoreNar), b1 -> ssh://b2
# (NarFromPath -> serve AddToStoreNar), b2 -> a fresh local store (DumpStorePath,
# delimited by parsing the NAR).  The NAR is streamed: sluice's peak RSS stays far
# below the path's size (printed by the command; limit 48 MiB).  Every copy verifies.
source "$(dirname "$0")/../harness/env.sh"
need_nix
for t in sshd ssh nc ip unshare; do command -v $t >/dev/null || [ -x /usr/sbin/$t ] || skip "$t missing"; done
M=$ROOT/tests/harness/machines.sh
export SLUICE_LAB=$T/lab
trap 'rc=$?; "$M" stop 2 >/dev/null 2>&1 || true; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT
"$M" start 2
export NIX_SSHOPTS="-F $SLUICE_LAB/ssh_config"
INNS=$SLUICE_LAB/inns
HK=$("$M" hostkey)
KEY=$("$M" key)
LIMIT_KB=$((48 * 1024))

mkdir -p "$T/a" "$T/c" "$T/big"
head -c $((200 * 1024 * 1024)) /dev/urandom >"$T/big/blob"
echo small >"$T/big/note"
P=$("$INNS" "$T/a" nix-store --add "$T/big")
HASH=$("$INNS" "$T/a" nix-store -q --hash "$P")
echo "path $P $HASH"

copy() { # INNS-DIR FROM TO
    local out
    out=$(/usr/bin/time -f "tree-peak-kb %M, %e s" "$INNS" "$1" "$SLUICE" store copy --from "$2" --to "$3" "$P" 2>&1) || { echo "$out"; fail "copy $2 -> $3"; }
    echo "$2 -> $3: $out" | tr '\n' ' '; echo
    echo "$out" | grep -q '^copied 1 of 1 paths (2097' || fail "copy $2 -> $3: $out"
    kb=$(echo "$out" | sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p')
    [ -n "$kb" ] && [ "$kb" -lt "$LIMIT_KB" ] || fail "peak RSS $kb KiB for $2 -> $3"
}
copy "$T/a" local "ssh-ng://b1?ssh-key=$KEY&base64-ssh-public-host-key=$HK"
copy "$T/a" "ssh-ng://b1" "ssh://b2?base64-ssh-public-host-key=$HK"
copy "$T/c" "ssh://b2" local
for h in b1 b2; do
    ssh -F "$SLUICE_LAB/ssh_config" $h nix-store --verify-path "$P" || fail "not valid on $h"
    assert_eq "$(ssh -F "$SLUICE_LAB/ssh_config" $h nix-store -q --hash "$P")" "$HASH" "hash on $h"
done
"$INNS" "$T/c" nix-store --verify-path "$P" || fail "not valid in c"
assert_eq "$("$INNS" "$T/c" nix-store -q --hash "$P")" "$HASH" "hash in c"
assert_eq "$("$INNS" "$T/c" nix-store -q --size "$P")" "$("$INNS" "$T/a" nix-store -q --size "$P")" "size"
echo "all good"

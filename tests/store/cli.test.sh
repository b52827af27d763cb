#!/usr/bin/env bash
# `sluice store ping` and `sluice store copy` against a child nix-daemon --stdio
# (`local`) and a running nix-daemon on its socket (`daemon`, `unix://PATH`), each
# with its own private /nix; the copy is checked with nix-store --verify-path and
# nix path-info in the target store.  Bad URIs and missing paths give clear errors.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v unshare >/dev/null || skip "unshare missing"
INNS=$T/inns
cat >"$INNS" <<'EOS'
#!/bin/sh
d=$1; shift; mkdir -p "$d/store" "$d/var/nix"
exec unshare --mount --propagation private sh -c 'mount --bind "$0" /nix && exec "$@"' "$d" "$@"
EOS
chmod +x "$INNS"
A=$T/a B=$T/b
mkdir -p "$A" "$B"
DPID=
stop_daemon() {
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.01; done
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=
}
trap 'rc=$?; stop_daemon; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT

# ping the embedded default: a child nix-daemon --stdio in store A
out=$("$INNS" "$A" "$SLUICE" store ping local)
echo "$out"
echo "$out" | grep -qx 'Protocol: worker 1.34 (peer 1.34)' || fail "protocol"
echo "$out" | grep -qx 'Nix version: 2.8.0' || fail "nix version"
echo "$out" | grep -qx 'Trusted: yes' || fail "trusted"
echo "$out" | grep -qx 'ca-derivations: on' || fail "ca-derivations"
json=$("$INNS" "$A" "$SLUICE" store ping --json local)
echo "$json" | grep -q '"trusted":true,"caDerivations":true' || fail "ping --json: $json"

# ca-derivations off (the daemon's own config decides): QueryRealisation kills a 2.8
# daemon, the probe sees that on its throw-away session
out=$(NIX_CONFIG=$(printf '%s\n' 'substituters =' 'build-users-group =' 'sandbox = false') \
    "$INNS" "$A" "$SLUICE" store ping local)
echo "$out" | grep -qx 'ca-derivations: off' || fail "ca-derivations off: $out"

# a running daemon on store B (as lab/daemon.sh starts one), reached by its socket
SOCK=$B/var/nix/daemon-socket/socket
setsid "$INNS" "$B" nix-daemon >"$T/daemon.log" 2>&1 </dev/null &
DPID=$!
for _ in $(seq 1 300); do [ -S "$SOCK" ] && break; sleep 0.01; done
[ -S "$SOCK" ] || { cat "$T/daemon.log"; fail "daemon did not start"; }
out=$("$SLUICE" store ping "unix://$SOCK")
echo "$out" | grep -qx 'Trusted: yes' || fail "unix ping: $out"
out=$("$INNS" "$B" "$SLUICE" store ping daemon)
echo "$out" | grep -qx 'Protocol: worker 1.34 (peer 1.34)' || fail "daemon ping: $out"

# something with references in A: a built chain plus its .drv closure
cat >"$T/chain.nix" <<'EON'
{ salt }:
let mk = name: deps: derivation { inherit name; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "echo ${salt} ${name} > $out; for d in ${toString deps}; do echo $d >> $out; done" ]; };
    a = mk "a" []; b = mk "b" [ a ];
in mk "c" [ a b ]
EON
DRV=$("$INNS" "$A" nix-instantiate "$T/chain.nix" --argstr salt "$$-$RANDOM" 2>/dev/null)
OUT=$("$INNS" "$A" nix-store -r "$DRV" 2>/dev/null)
n=$("$INNS" "$A" nix-store -qR "$OUT" | wc -l)
assert_eq "$n" 3 "closure of the output"

# copy A -> B (child daemon -> daemon socket): 3 paths, then nothing left to copy
out=$("$INNS" "$A" "$SLUICE" store copy --from local --to "unix://$SOCK" "$OUT")
echo "$out"
echo "$out" | grep -q '^copied 3 of 3 paths' || fail "copy: $out"
# the walk stops at what B has: OUT (with its closure), then the three drvs
out=$("$INNS" "$A" "$SLUICE" store copy --to "unix://$SOCK" "$OUT" "$DRV")
echo "$out" | grep -q '^copied 3 of 4 paths' || fail "second copy (drv closure only): $out"
out=$("$INNS" "$A" "$SLUICE" store copy --to "unix://$SOCK" "$OUT" "$DRV")
echo "$out" | grep -q '^copied 0 of 2 paths' || fail "third copy (B has both, nothing below them is asked): $out"
for p in $("$INNS" "$A" nix-store -qR "$OUT" "$DRV"); do
    "$INNS" "$B" nix-store --verify-path "$p" || fail "not valid in B: $p"
    a=$("$INNS" "$A" nix path-info --json --derivation "$p" | sed 's/,\?"registrationTime":[0-9]*//; s/,\?"ultimate":true//')
    b=$("$INNS" "$B" nix path-info --json --derivation "$p" | sed 's/,\?"registrationTime":[0-9]*//; s/,\?"ultimate":true//')
    assert_eq "$b" "$a" "path info of $p"
done
# and back the other way, from the daemon into a fresh store C
C=$T/c
mkdir -p "$C"
out=$("$INNS" "$C" "$SLUICE" store copy --from "unix://$SOCK" --to local "$OUT")
echo "$out" | grep -q '^copied 3 of 3 paths' || fail "copy back: $out"
"$INNS" "$C" nix-store --verify-path $("$INNS" "$C" nix-store -qR "$OUT") || fail "verify in C"

# errors
if "$SLUICE" store ping "bogus://x" 2>"$T/err"; then fail "bogus URI accepted"; fi
grep -q "unsupported store URI 'bogus://x'" "$T/err" || fail "message: $(cat "$T/err")"
if "$INNS" "$A" "$SLUICE" store copy --to "unix://$SOCK" /nix/store/00000000000000000000000000000000-nope 2>"$T/err"; then
    fail "missing path copied"
fi
grep -q "is not valid" "$T/err" || fail "message: $(cat "$T/err")"
if "$SLUICE" store copy --to "unix://$SOCK" /tmp/x 2>"$T/err"; then fail "non-store path copied"; fi
grep -q "not in the Nix store\|store path\|/tmp/x" "$T/err" || fail "message: $(cat "$T/err")"
if "$SLUICE" store ping "unix://$T/nosuch.sock" 2>"$T/err"; then fail "ping of no socket"; fi
grep -q "cannot connect" "$T/err" || fail "message: $(cat "$T/err")"
stop_daemon
echo "all good"

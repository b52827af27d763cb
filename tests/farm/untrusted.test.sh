#!/usr/bin/env bash
# Builder hosts whose Nix does not trust us.  b2 (ssh-ng://) and b3 (ssh://) reach their
# store through a nix-daemon whose nix.conf says `trusted-users = nobody`, so Nix itself
# refuses: "you are not privileged to build input-addressed derivations" (an IA build)
# and "... lacks a valid signature" (an unsigned IA input copied to it).  They have the
# better speed factor, so they are tried first; b1 trusts us.  Asserts:
#  - the build never fails: the refused step runs again on b1 and succeeds;
#  - each refusal leaves an attempt row (status 3, Nix's message) on the refusing host
#    and disables it, with the message shown by `sluice status`;
#  - both refusals, on both protocols.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 3
untrusted_host 2
untrusted_host 3
machines_file "ssh-ng://b2?remote-program=$UNTRUSTED_NG x86_64-linux - 2 4 ca-derivations" \
    "ssh://b3?remote-program=$UNTRUSTED_SERVE x86_64-linux - 2 4 ca-derivations" \
    'ssh-ng://b1 x86_64-linux - 2 1 ca-derivations'
B2="ssh-ng://b2?remote-program=$UNTRUSTED_NG" B3="ssh://b3?remote-program=$UNTRUSTED_SERVE"

# base has no inputs: the IA build itself is refused (b2 first: same speed as b3, listed first)
run_bg --machines "$T/machines"
submit -A base >/dev/null
base=$(build_id base)
wait_until 60 build_done "$base" || { tail -20 "$RUN_LOG"; fail "base not finished"; }
steps_of "$base"
assert_eq "$(build_row "$base")" "1|0" "base"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $base AND status = 0")" ssh-ng://b1 \
    "base built on b1"
for m in "$B2" "$B3"; do
    msg=$(q "SELECT status || '|' || errorMsg FROM BuildSteps WHERE build = $base AND machine = '$m'")
    grep -q "^3|.*not privileged to build input-addressed derivations" <<<"$msg" ||
        fail "attempt on $m: '$msg'"
done
wait_until 5 sh -c "'$SLUICE' status | grep -q 'b3.*disabled.*not privileged'" || true # snapshot: every 2 s
"$SLUICE" status | tee "$T/status.out"
grep -qF "$B2: disabled" "$T/status.out" || fail "b2 not shown disabled"
grep -F "$B2: disabled" "$T/status.out" | grep -q "not privileged to build input-addressed" ||
    fail "b2: no reason shown"
grep -F "$B3: disabled" "$T/status.out" | grep -q "not privileged to build input-addressed" ||
    fail "b3 not shown disabled with the reason"
grep -q "ssh-ng://b1: enabled" "$T/status.out" || fail "b1 not shown enabled"
run_stop

# mid's input base is an unsigned IA path: copying it to an untrusted host is refused
run_bg --machines "$T/machines"
submit -A mid >/dev/null
mid=$(build_id mid)
wait_until 60 build_done "$mid" || { tail -20 "$RUN_LOG"; fail "mid not finished"; }
steps_of "$mid"
assert_eq "$(build_row "$mid")" "1|0" "mid"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $mid AND status = 0")" ssh-ng://b1 \
    "mid built on b1"
for m in "$B2" "$B3"; do
    msg=$(q "SELECT status || '|' || errorMsg FROM BuildSteps WHERE build = $mid AND machine = '$m'")
    grep -q "^3|.*lacks a valid signature" <<<"$msg" || fail "attempt on $m: '$msg'"
done
status_says() { "$SLUICE" status | grep -F "$1: disabled" | grep -q "$2"; }
wait_until 5 status_says "$B3" "lacks a valid signature" ||
    fail "b3 not shown disabled for the signature: $("$SLUICE" status)"
run_stop
"$SLUICE" status | grep -q "^machines:" && fail "a stopped runner's machines still shown"
for i in 1 2 3; do
    d=$(builder_drvs $i)
    [ -z "$d" ] || fail "b$i holds .drv files: $d"
done
echo "ok: untrusted hosts are disabled and their steps run elsewhere"

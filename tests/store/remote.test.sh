#!/usr/bin/env bash
# Builds on two builder hosts with their own /nix over real ssh (ssh-ng:// on b1,
# ssh:// on b2) through the store API: input copy, inline BasicDerivation builds (IA
# and resolved CA), output copy, realisations, checked against nix-store -r in a
# private store; temp roots of a step end with its session (GC on the builder); the
# master connection survives a crash; keepalives end a session cut off the network.
# The local store is a private /nix (tests/store/remote.c has the details).
source "$(dirname "$0")/../harness/env.sh"
need_nix
for t in sshd ssh nc ip unshare; do command -v $t >/dev/null || [ -x /usr/sbin/$t ] || skip "$t missing"; done
M=$ROOT/tests/harness/machines.sh
export SLUICE_LAB=$T/lab
trap 'rc=$?; "$M" stop 2 >/dev/null 2>&1 || true; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT
"$M" start 2
export NIX_SSHOPTS="-F $SLUICE_LAB/ssh_config"
mkdir -p "$T/local"
out=$(SLUICE_TEST_MACHINES=1 "$SLUICE_LAB/inns" "$T/local" "$SLUICE_BUILD/sluice-test" store_remote 2>&1) || { echo "$out"; fail "store_remote unit tests"; }
echo "$out"
echo "$out" | grep -q '^3 passed, 0 failed, 0 skipped' || fail "expected 3 remote tests to pass"

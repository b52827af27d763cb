#!/usr/bin/env bash
# ssh-ng:// (worker protocol over ssh) on builder host b1, through the store API:
# input copy, inline BasicDerivation builds (an input-addressed chain and a floating-CA
# chain resolved first), output copy, realisations, all checked against nix-store -r in
# a private oracle store; a GC on the builder keeps a step's inputs while its session
# is open and collects them after (tests/store/remote.c).
source "$(dirname "$0")/remote_lib.sh"
out=$(remote_run store_remote__ssh_ng)
echo "$out"
echo "$out" | grep -q '^1 passed, 0 failed, 0 skipped' || fail "expected 1 test to pass"

#!/usr/bin/env bash
# ssh:// (serve protocol, nix-store --serve --write) on builder host b2: the same
# chains and checks as remote_ng (tests/store/remote.c).
source "$(dirname "$0")/remote_lib.sh"
out=$(remote_run store_remote__ssh_serve)
echo "$out"
echo "$out" | grep -q '^1 passed, 0 failed, 0 skipped' || fail "expected 1 test to pass"

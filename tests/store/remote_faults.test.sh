#!/usr/bin/env bash
# Faults on builder hosts: the ssh master connection comes back after the machine
# crashed; keepalives end a silent build's session cut off the network within the
# configured limit; cancelling a remote build (both protocols) returns at once and
# stops the builder on the host; a released session is reaped by the machine's closer,
# and store_machine_free waits for a pending close; a session passed on serves the next
# steps up to its limit, is closed when not taken, and is replaced when its builder died
# meanwhile (tests/store/remote.c).
source "$(dirname "$0")/remote_lib.sh"
out=$(remote_run store_remote__master store_remote__abort store_remote__release store_remote__pass_on)
echo "$out"
echo "$out" | grep -q '^4 passed, 0 failed, 0 skipped' || fail "expected 4 tests to pass"

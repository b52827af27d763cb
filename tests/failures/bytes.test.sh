#!/usr/bin/env bash
# Build logs are bytes: a builder printing NUL bytes, a 2 MiB line and binary garbage
# (farm.nix bytesScript) builds on the local store, on b1 (ssh://) and on b2
# (ssh-ng://) as under nix-build: each build succeeds at its first try, its stored log
# (`sluice log`) is byte for byte what the builder printed, and no machine is disabled.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
machines_file 'local x86_64-linux - 2 1' \
    'ssh://b1 x86_64-linux - 2 1 hop1 hop1' \
    'ssh-ng://b2 x86_64-linux - 2 1 hop2 hop2'
# what the builders print, byte for byte (the script is farm.nix's)
nix-instantiate --eval --strict --json "$FARM_NIX" -A bytesScript |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$T/bytes.sh"
sh "$T/bytes.sh" >"$T/expected"
run_bg --machines "$T/machines"
submit -A bytesLocal -A bytes1 -A bytes2 >/dev/null
all=$(q "SELECT id FROM Builds ORDER BY id" | tr '\n' ' ')
for id in $all; do
    wait_until 120 build_done "$id" || { tail -20 "$RUN_LOG"; fail "build $id not finished"; }
done
for job in bytesLocal bytes1 bytes2; do
    id=$(build_id "$job")
    echo "$job: build $id: $(build_row "$id")"
    steps_of "$id" | sed 's/^/    /'
    assert_eq "$(build_row "$id")" "1|0" "$job"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 0")" 1 \
        "$job: build steps (no retry)"
    "$SLUICE" log "$id" >"$T/log-$job"
    echo "    $(wc -c <"$T/log-$job") bytes of log"
    cmp "$T/expected" "$T/log-$job" || fail "$job: the log is not what the builder printed"
done
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytes1)")" ssh://b1 "bytes-1 on b1"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytes2)")" ssh-ng://b2 "bytes-2 on b2"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytesLocal)")" "" "bytes-local on the local store"
if grep -a "disabled" "$RUN_LOG"; then fail "a machine was disabled"; fi
run_stop
echo "ok: bytes"

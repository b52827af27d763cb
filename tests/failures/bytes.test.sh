#!/usr/bin/env bash
# Build logs are bytes: a builder printing NUL bytes, a 2 MiB line and binary garbage
# (farm.nix bytesScript) builds on the local store, on b1 (ssh://) and on b2
# (ssh-ng://) as under nix-build: each build succeeds at its first try, its stored log
# (`sluice log`) is byte for byte what the builder printed, and no machine is disabled.
# The same bytes from a failing builder (bytesFail*: with `@nix` messages of 100 fields
# and NUL bytes first, which Nix passes on): the build fails at its first try (status
# 1), its error message (Nix puts the last log lines in it) is kept as valid UTF-8
# within its limit, its log holds every line, and no machine is disabled.
# A peer whose reply to a build makes no sense (fakepeer.py, FAKEPEER_MODE=garble) fails
# the step, counted against max-retries (2: the build ends aborted after 2 tries), and
# is not disabled either: its connection worked.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
export FAKEPEER_MODE=garble FAKEPEER_PIDFILE=$DIR/fakepeer.pid
machines_file 'local x86_64-linux - 2 1' \
    'ssh://b1 x86_64-linux - 2 1 hop1 hop1' \
    'ssh-ng://b2 x86_64-linux - 2 1 hop2 hop2' \
    "ssh://localhost?remote-program=python3%20$ROOT/tests/failures/fakepeer.py x86_64-linux - 1 1 garble garble"
# what the builders print, byte for byte (the script is farm.nix's)
nix-instantiate --eval --strict --json "$FARM_NIX" -A bytesScript |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$T/bytes.sh"
sh "$T/bytes.sh" >"$T/expected"
run_bg --machines "$T/machines" --max-retries 2 --retry-interval 1
submit -A bytesLocal -A bytes1 -A bytes2 -A bytesFailLocal -A bytesFail1 -A bytesFail2 \
    -A garbled >/dev/null
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
for job in bytesFailLocal bytesFail1 bytesFail2; do
    id=$(build_id "$job")
    echo "$job: build $id: $(build_row "$id")"
    steps_of "$id" | sed 's/^/    /'
    assert_eq "$(build_row "$id")" "1|1" "$job"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 0")" 1 \
        "$job: build steps (no retry)"
    msg=$(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")
    echo "    error message: ${#msg} characters: ${msg:0:100}"
    [ ${#msg} -le 70000 ] || fail "$job: an error message of ${#msg} characters"
    # the remote ssh:// session's result has no log tail; Nix's own messages do
    case $job in bytesFail1) ;; *) grep -q "bytes-nul:" <<<"$msg" || fail "$job: no log tail in the message" ;; esac
    q "SELECT CAST(errorMsg AS BLOB) FROM BuildSteps WHERE build = $id" |
        python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8")' ||
        fail "$job: the error message is not valid UTF-8"
    "$SLUICE" log "$id" >"$T/log-$job"
    python3 - "$T/expected" "$T/log-$job" <<'PY' || fail "$job: the log lacks bytes the builder printed"
import sys
want = open(sys.argv[1], "rb").read()
got = open(sys.argv[2], "rb").read()
for line in want.split(b"\n")[:-1]:
    if line + b"\n" not in got:
        print("missing: %r (%d bytes)" % (line[:60], len(line)))
        sys.exit(1)
PY
done
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytes1)")" ssh://b1 "bytes-1 on b1"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytes2)")" ssh-ng://b2 "bytes-2 on b2"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id bytesLocal)")" "" "bytes-local on the local store"
id=$(build_id garbled)
echo "garbled: build $id: $(build_row "$id")"
steps_of "$id" | sed 's/^/    /'
assert_eq "$(build_row "$id")" "1|3" "garbled"
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND type = 0")" 2 \
    "garbled: steps (2 tries)"
q "SELECT errorMsg FROM BuildSteps WHERE build = $id" | grep -q "out of range" ||
    fail "garbled: $(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")"
if grep -a "disabled" "$RUN_LOG"; then fail "a machine was disabled"; fi
run_stop
echo "ok: bytes"

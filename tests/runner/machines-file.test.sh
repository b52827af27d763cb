#!/usr/bin/env bash
# A machines file that goes bad is reported once per version, not at every look (the
# runner looks every second): an invalid line, then the file removed, each gives one
# warning over several seconds while the machines loaded before stay; a valid file
# again is picked up.  (No database involved beyond the runner's start: SQLite only.)
source "$(dirname "$0")/../harness/env.sh"
need_nix
mkdir -p "$SLUICE_STATE_DIR"
M=$T/machines
printf 'local x86_64-linux - 1 1\n' >"$M"
"$SLUICE" run --machines "$M" >"$T/run.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
warnings() { grep -c "machines file:" "$T/run.log" || true; }
for _ in $(seq 100); do grep -q "machine(s) loaded" "$T/run.log" && break; sleep 0.1; done
grep -q "machine(s) loaded" "$T/run.log" || fail "runner did not start: $(cat "$T/run.log")"

printf 'local x86_64-linux - 1 1\nftp://nowhere x86_64-linux\n' >"$M"
sleep 4
assert_eq "$(warnings)" 1 "warnings about the invalid file after 4 s"
grep "machines file:" "$T/run.log" | grep -q "unsupported store URI 'ftp://nowhere'" ||
    fail "the warning does not say what is wrong: $(grep "machines file:" "$T/run.log")"
rm "$M"
sleep 4
assert_eq "$(warnings)" 2 "warnings after the file was removed too"
printf 'local x86_64-linux - 2 1\n' >"$M"
sleep 3
assert_eq "$(warnings)" 2 "warnings after a valid file came back"
kill -0 $pid || fail "the runner ended: $(tail -5 "$T/run.log")"
kill -TERM $pid
wait $pid || fail "the runner exited non-zero: $(tail -5 "$T/run.log")"
trap - EXIT
rm -rf "$T"
echo "ok: machines file"

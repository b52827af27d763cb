#!/usr/bin/env bash
# Memory under slow readers: 16 clients ask for a 64 MiB log at once and read it at
# 4 KiB a second.  Whole logs are streamed from the file through a bounded
# decompression window, so the runner's RSS stays far under the bound docs/OPERATING.md
# gives: at most 128 MiB here (with each reader holding the whole log under the 192 MiB
# cap it was 310 MiB; before any cap 660 MiB).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools
command -v zstd >/dev/null || skip "zstd missing"
mkdir -p "$SLUICE_STATE_DIR"
base=00000000000000000000000000000000-big-log.drv
mkdir -p "$SLUICE_STATE_DIR/build-logs/00"
"$PY" -c 'import sys
line = b"a line of a big build log, 64 bytes with its newline...........\n"
for _ in range(1 << 20): sys.stdout.buffer.write(line)' |
    zstd -q -o "$SLUICE_STATE_DIR/build-logs/00/${base:2}.zst"
start_runner
[ "$(hget "/log/$base" --max-time 60)" = 200 ] || fail "the log is not served: $(head -c 300 "$T/body")"
assert_eq "$(wc -c <"$T/body")" 67108864 "log size"
"$PY" "$ROOT/tests/http/slowreaders.py" "$PORT" "/log/$base" 16 12 "$RUN_PID" | tee "$T/slow.out"
peak=$(sed -n 's/^peak runner RSS: \([0-9]*\) MiB/\1/p' "$T/slow.out")
[ "$peak" -le 128 ] || fail "runner RSS $peak MiB with 16 slow readers (bound 128 MiB)"
grep -q "200 x" "$T/slow.out" || fail "no slow reader was served"
stop_runner
echo "ok: slow readers"

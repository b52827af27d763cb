#!/usr/bin/env bash
# The HTTP server of `sluice run` during and after a real build.  Two builds are queued
# with `sluice submit`: `top`, a content-addressed derivation with a content-addressed
# input (so it is resolved: a status-13 row, then a step for the resolved drv, which
# prints 62 lines and sleeps 15 s), and `victim`, which sleeps 30 s.
#   while `top` builds: /status, /status/machines (with each machine's Nix release) and
#     /metrics agree with the busy BuildSteps rows and the unfinished Builds (metrics
#     parsed by a strict Prometheus parser); /build/ID agrees with the database and links the status-13 step to the
#     running step of its resolved drv; the log so far comes by both routes, with Range;
#     the resolution step has no log (404);
#   mutations: without the token, with a wrong one, or by GET: refused and the database
#     unchanged; with it: bump sets globalPriority, cancel finishes the victim with
#     status 4 as Hydra's web UI does (and the triggers notify the runner, which stops
#     the victim's step); a second cancel is a conflict; unknown builds 404;
#   after `top` finished: /build/ID agrees with the database, the whole log is the same
#     by both routes and as `sluice log` prints it, ?tail, .../log/tail, suffix ranges,
#     416 and HEAD work, the counters in /metrics match the database, the queue-wait and
#     step-duration histograms count every started step (durations summing to the rows'
#     times) and process_* describe the runner;
#   SIGTERM stops the runner and the server with exit status 0 and no busy row.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools
CHECK="$PY $ROOT/tests/http/check.py"
DB=$SLUICE_STATE_DIR/sluice.db
TOKEN=tok-$$-$RANDOM
cp "$ROOT/tests/data/http/slow.nix" "$T/slow.nix"
SALT=h$$x$RANDOM

"$SLUICE" submit "$T/slow.nix" -A top -A victim --argstr salt "$SALT" --argstr sleep 15 \
    >"$T/ids" 2>"$T/submit.err" || { cat "$T/submit.err"; fail "submit"; }
B1=$(sql "SELECT id FROM Builds WHERE job = 'top'")
B2=$(sql "SELECT id FROM Builds WHERE job = 'victim'")
[ -n "$B1" ] && [ -n "$B2" ] || fail "builds not queued"
TOPDRV=$(sql "SELECT drvPath FROM Builds WHERE id = $B1")

LAUNCHED=$(date +%s.%N)
start_runner --http-admin-token "$TOKEN"

# ---- wait until the resolved drv of `top` builds and has written its 62 lines
RSTEP= RDRV=
for _ in $(seq 1 600); do
    RSTEP=$(sql "SELECT stepnr FROM BuildSteps WHERE build = $B1 AND busy = 30 AND drvPath <> '$TOPDRV'
                 AND drvPath LIKE '%-http-top-$SALT.drv'")
    if [ -n "$RSTEP" ]; then
        RDRV=$(sql "SELECT drvPath FROM BuildSteps WHERE build = $B1 AND stepnr = $RSTEP")
        code=$(hget "/build/$B1/step/$RSTEP/log")
        [ "$code" = 200 ] && grep -q '^line-59$' "$T/body" && break
    fi
    sleep 0.05
done
[ -n "$RSTEP" ] && grep -q '^line-59$' "$T/body" || { tail "$T/run.log"; fail "the resolved step did not start"; }
RSTEP13=$(sql "SELECT stepnr FROM BuildSteps WHERE build = $B1 AND status = 13")
[ -n "$RSTEP13" ] || fail "no status-13 row"
assert_eq "$(sql "SELECT resolvedDrvPath FROM BuildSteps WHERE build = $B1 AND stepnr = $RSTEP13")" \
    "$(basename "$RDRV")" "resolvedDrvPath"

# ---- during the build: the JSON and metrics agree with the database
agree() { # retry a comparison a few times (a phase may move between the two reads)
    local i
    for i in 1 2 3 4 5; do
        "$@" 2>"$T/agree.err" && return 0
        sleep 0.1
    done
    cat "$T/agree.err"
    fail "disagrees with the database: $*"
}
running_check() {
    [ "$(hget /status)" = 200 ] && cp "$T/body" "$T/status.json" &&
        [ "$(hget /status/machines)" = 200 ] && cp "$T/body" "$T/machines.json" &&
        [ "$(hget /metrics)" = 200 ] && cp "$T/body" "$T/metrics.txt" &&
        $CHECK running "$DB" "$T/status.json" "$T/machines.json" "$T/metrics.txt"
}
agree running_check
[ "$(sql "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" -ge 1 ] || fail "nothing busy"
# the machine's Nix release, learnt from its sessions (the local nix-daemon --stdio here)
assert_eq "$(jpy "$T/machines.json" '" ".join(sorted(str(m.get("nixVersion")) for m in j["machines"].values()))')" \
    "$(nix-store --version | sed 's/.* //')" "nixVersion in /status/machines"
grep -q '^content-type: text/plain; version=0.0.4' <(tr 'A-Z' 'a-z' <"$T/head") || fail "metrics content type"
assert_eq "$(jpy "$T/status.json" 'j["queueRunner"]["status"]')" "up" "status"
build_check() {
    [ "$(hget "/build/$1")" = 200 ] && cp "$T/body" "$T/build.json" &&
        $CHECK build "$DB" "$1" "$T/build.json"
}
agree build_check "$B1"
assert_eq "$(jpy "$T/build.json" "[s for s in j['steps'] if s['stepnr'] == $RSTEP13][0]['terminal']['stepnr']")" \
    "$RSTEP" "status-13 step linked to the running step"
assert_eq "$(jpy "$T/build.json" "[s for s in j['steps'] if s['stepnr'] == $RSTEP13][0]['terminal']['busy']")" \
    "30" "terminal busy"
assert_eq "$(hget "/status/build/$B1/active")" 200 "active"
assert_eq "$(jpy "$T/body" 'j["active"]')" "True" "build 1 active"

# the log so far, by both routes
assert_eq "$(hget "/build/$B1/step/$RSTEP/log")" 200 "step log"
cp "$T/body" "$T/log1"
assert_eq "$(head -1 "$T/log1")" "start" "first log line"
grep -q '^end$' "$T/log1" && fail "log has 'end' while the step sleeps"
assert_eq "$(hget "/log/$(basename "$RDRV")")" 200 "log by drv"
cmp -s "$T/log1" "$T/body" || fail "the two routes differ while running"
assert_eq "$(hget "/build/$B1/log")" 200 "build log while running"
cmp -s "$T/log1" "$T/body" || fail "/build/ID/log is not the running step's log"
LEN1=$(stat -c %s "$T/log1")
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -H 'Range: bytes=0-4')" 206 "range"
assert_eq "$(cat "$T/body")" "start" "range body"
assert_eq "$(header Content-Range)" "bytes 0-4/$LEN1" "content-range"
assert_eq "$(hget "/build/$B1/step/$RSTEP13/log")" 404 "resolution step log"
grep -q 'resolution' "$T/body" || fail "404 of a resolution step does not say why"

# ---- mutations
assert_eq "$(hget "/build/$B2/bump?priority=77" -X POST)" 403 "bump without token"
assert_eq "$(hget "/build/$B2/bump?priority=77" -X POST -H "Authorization: Bearer wrong$TOKEN")" 403 "bump, wrong token"
assert_eq "$(hget "/build/$B2/bump?priority=77" -X POST -H "Authorization: Basic $TOKEN")" 403 "bump, basic auth"
assert_eq "$(hget "/build/$B2/bump?priority=77" -H "Authorization: Bearer $TOKEN")" 405 "bump by GET"
assert_eq "$(sql "SELECT globalPriority FROM Builds WHERE id = $B2")" 0 "priority after refused bumps"
assert_eq "$(hget "/build/$B2/bump?priority=x7" -X POST -H "Authorization: Bearer $TOKEN")" 400 "bump, bad priority"
assert_eq "$(hget "/build/$B2/bump?priority=77" -X POST -H "Authorization: Bearer $TOKEN")" 200 "bump"
assert_eq "$(sql "SELECT globalPriority FROM Builds WHERE id = $B2")" 77 "priority after bump"
assert_eq "$(sql "SELECT count(*) FROM sluice_events WHERE channel = 'builds_bumped'")" 1 "builds_bumped"
assert_eq "$(hget "/build/99999/bump" -X POST -H "Authorization: Bearer $TOKEN")" 404 "bump unknown"
assert_eq "$(hget "/build/$B2/cancel" -X POST)" 403 "cancel without token"
assert_eq "$(hget "/build/$B2/cancel" -X POST -H "Authorization: Bearer ${TOKEN}x")" 403 "cancel, wrong token"
assert_eq "$(sql "SELECT finished FROM Builds WHERE id = $B2")" 0 "victim after refused cancels"
assert_eq "$(hget "/build/$B2/cancel" -X POST -H "Authorization: Bearer $TOKEN")" 200 "cancel"
assert_eq "$(sql "SELECT finished, buildStatus, isCachedBuild, startTime = stopTime AND stopTime > 0
                  FROM Builds WHERE id = $B2")" "1|4|0|1" "cancelled row"
assert_eq "$(sql "SELECT count(*) FROM sluice_events WHERE channel = 'builds_cancelled'")" 1 "builds_cancelled"
assert_eq "$(hget "/build/$B2/cancel" -X POST -H "Authorization: Bearer $TOKEN")" 409 "second cancel"
assert_eq "$(hget "/build/99999/cancel" -X POST -H "Authorization: Bearer $TOKEN")" 404 "cancel unknown"
assert_eq "$(hget "/status/build/$B2/active")" 200 "active (cancelled)"
assert_eq "$(jpy "$T/body" 'j["active"]')" "False" "cancelled build not active"
# the runner hears of it and stops the victim's step
for _ in $(seq 1 300); do
    [ "$(sql "SELECT count(*) FROM BuildSteps WHERE build = $B2 AND busy <> 0")" = 0 ] &&
        [ "$(hget "/status/build/$B2/active")" = 200 ] && [ "$(jpy "$T/body" 'j["inRunner"]')" = False ] && break
    sleep 0.1
done
assert_eq "$(sql "SELECT count(*) FROM BuildSteps WHERE build = $B2 AND busy <> 0")" 0 "victim still busy"
assert_eq "$(jpy "$T/body" 'j["inRunner"]')" "False" "victim still in the runner"

# ---- after `top` finished
for _ in $(seq 1 600); do
    [ "$(hget "/status/build/$B1/active")" = 200 ] && [ "$(jpy "$T/body" 'j["active"]')" = False ] && break
    sleep 0.1
done
assert_eq "$(jpy "$T/body" 'j["active"]')" "False" "top still active"
assert_eq "$(sql "SELECT buildStatus FROM Builds WHERE id = $B1")" 0 "top's status"
agree build_check "$B1"
assert_eq "$(jpy "$T/build.json" "[s for s in j['steps'] if s['stepnr'] == $RSTEP13][0]['terminal']['status']")" \
    "0" "terminal finished"
assert_eq "$(jpy "$T/build.json" 'j["buildstatusName"]')" "succeeded" "status name"
agree build_check "$B2"
assert_eq "$(jpy "$T/build.json" 'j["buildstatus"]')" "4" "victim status in /build"

assert_eq "$(hget "/build/$B1/step/$RSTEP/log")" 200 "final step log"
cp "$T/body" "$T/log2"
"$SLUICE" log "$B1" "$RSTEP" >"$T/log.cli" || fail "sluice log"
cmp -s "$T/log2" "$T/log.cli" || fail "HTTP log differs from sluice log"
assert_eq "$(tail -1 "$T/log2")" "end" "last log line"
assert_eq "$(grep -c '^line-' "$T/log2")" 60 "log lines"
cmp -s "$T/log1" <(head -c "$LEN1" "$T/log2") || fail "the log while running is not a prefix of the final one"
assert_eq "$(hget "/log/$(basename "$RDRV")")" 200 "final log by drv"
cmp -s "$T/log2" "$T/body" || fail "the two routes differ"
assert_eq "$(hget "/build/$B1/log")" 200 "build log"
cmp -s "$T/log2" "$T/body" || fail "/build/ID/log is not the log of the build's last step"
LEN=$(stat -c %s "$T/log2")
assert_eq "$(hget "/build/$B1/step/$RSTEP/log?tail=2")" 200 "tail"
assert_eq "$(cat "$T/body")" "$(printf 'line-59\nend')" "tail=2"
assert_eq "$(hget "/log/$(basename "$RDRV")?tail=0")" 200 "tail=0"
assert_eq "$(stat -c %s "$T/body")" 0 "tail=0 body"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log/tail")" 200 "log/tail"
cmp -s "$T/body" <(tail -n 50 "$T/log2") || fail "log/tail is not the last 50 lines"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -H 'Range: bytes=-4')" 206 "suffix range"
assert_eq "$(cat "$T/body")" "end" "suffix range body"
assert_eq "$(header Content-Range)" "bytes $((LEN - 4))-$((LEN - 1))/$LEN" "suffix content-range"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -H 'Range: bytes=6-')" 206 "open range"
cmp -s "$T/body" <(tail -c +7 "$T/log2") || fail "open range body"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -H "Range: bytes=$LEN-")" 416 "range past the end"
assert_eq "$(header Content-Range)" "bytes */$LEN" "416 content-range"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -H 'Range: bytes=0-1,4-5')" 200 "multi-range served whole"
assert_eq "$(stat -c %s "$T/body")" "$LEN" "multi-range body"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log" -I)" 200 "HEAD"
assert_eq "$(header Content-Length)" "$LEN" "HEAD content-length"
assert_eq "$(hget "/build/$B1/step/$RSTEP/log?tail=x")" 400 "bad tail"
assert_eq "$(hget "/build/$B1/step/1/log")" 200 "dep log"
grep -q '^dep-log$' "$T/body" || fail "dep log content"
assert_eq "$(hget "/build/$B1/step/99/log")" 404 "no such step"

assert_eq "$(hget /metrics)" 200 "metrics"
cp "$T/body" "$T/metrics.txt"
$CHECK final "$DB" "$T/metrics.txt" "$LAUNCHED" || fail "final metrics"

stop_runner
assert_eq "$(sql "SELECT count(*) FROM BuildSteps WHERE busy <> 0")" 0 "busy rows after stop"
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $B2")" "1|4" "victim stays cancelled"
echo "ok"

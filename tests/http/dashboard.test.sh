#!/usr/bin/env bash
# The web dashboard of `sluice run --http`, with a real browser (headless Chromium
# driven through chromedriver's WebDriver API by tests/http/browser.py).
#
# Set-up: one quick build, then 100,000 finished builds inserted straight into the
# database (two systems, some failed), then `top` (content-addressed, with a
# content-addressed input: the runner resolves it, a status-13 row, then a step for the
# resolved drv, which prints a line every 0.2 s until the test creates $T/release),
# `broken` (fails) and `foreign` (aarch64-linux, for a machine that cannot be reached:
# it is disabled, the build stays queued).
#   endpoints (curl): `/` is the page (Content-Security-Policy allowing only this
#     server) unless the request asks for JSON (Accept: application/json: the index); /static/ files have
#     their types, unknown ones 404, POST 405;
#   JSON lists (tests/http/dashcheck.py api): /api/builds pages agree with SQL on the
#     database (newest first, keyset `before`, filters status/finished/running/job
#     substring with LIKE escaping/system), bad arguments 400, a page deep in 100,000
#     builds is fast; /api/queue counts per system agree with the database;
#     /api/build/ID/graph has every step and the edges input (dep -> P),
#     resolved (P -> P') and output (dep -> P');
#   log stream (dashcheck.py stream; server-sent events) while the step runs: events
#     with contiguous offsets, the text is the log's, it grows, Last-Event-ID resumes
#     at that offset;
#     a status-13 step and an unknown step are 404; more than 8 streams at once: 503,
#     and closed streams free their slots;
#   browser (tests/http/browser.py check): overview, build page (Resolved step and the
#     step of its resolved drv, CA chain, graph, live log growing), machines (the
#     running step in a slot with its phase, the disabled machine with its reason),
#     builds (pagination, filters through the form), the empty log of `quick` said
#     to be empty, the admin token entered in the
#     page, then its buttons: clear cached failure and restart of `broken`, bump and
#     cancel of `foreign` (rows and events checked in the database afterwards: the
#     bumped priority, the cancelled row, `broken` built again rather than a cached
#     failure), the build page and overview at 420 px, nothing
#     loaded from elsewhere, no console errors, the end of the step seen live;
#     screenshots in tests/out/dashboard/*.png;
#   after the build (dashcheck.py final): the stream of the finished step sends the
#     whole log (equal to `sluice log`) and an end event with status 0, then closes.
# Skipped (77) when chromium or chromedriver is missing.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver || echo /usr/bin/chromedriver)}
[ -x "$CHROMIUM" ] || skip "chromium missing (Debian package chromium)"
[ -x "$CHROMEDRIVER" ] || skip "chromedriver missing (Debian package chromium-driver)"
export CHROMIUM CHROMEDRIVER
BROWSER="$PY $ROOT/tests/http/browser.py"
CHECK="$PY $ROOT/tests/http/dashcheck.py"
DB=$SLUICE_STATE_DIR/sluice.db
OUTDIR=$ROOT/tests/out/dashboard # screenshots land in $T/shots first, then here
mkdir -p "$OUTDIR" "$T/shots"
cp "$ROOT/tests/data/http/dashboard.nix" "$T/dashboard.nix"
SALT=d$$x$RANDOM
BULK=100000

# ---- builds: one quick, 100,000 finished ones, then the content-addressed one
"$SLUICE" submit "$T/dashboard.nix" -A quick --argstr salt "$SALT" >/dev/null 2>"$T/submit.err" ||
    { cat "$T/submit.err"; fail "submit quick"; }
JS=$(sql "SELECT jobset_id FROM Builds WHERE job = 'quick'")
BQ=$(sql "SELECT id FROM Builds WHERE job = 'quick'")
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $BULK)
     INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system, priority,
                         globalPriority, startTime, stopTime, isCachedBuild, buildStatus)
     SELECT 1, 1700000000 + i, $JS, 'bulk-' || (i % 100), 'bulk-' || i,
            '/nix/store/00000000000000000000000000000000-bulk-' || i || '.drv',
            CASE WHEN i % 3 = 0 THEN 'aarch64-linux' ELSE 'x86_64-linux' END, 100, 0,
            1700000000 + i, 1700000060 + i, 0, CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END FROM n"
BULK_FIRST=$(sql "SELECT min(id) FROM Builds WHERE job LIKE 'bulk-%'")
"$SLUICE" submit "$T/dashboard.nix" -A top -A broken -A foreign --argstr salt "$SALT" --argstr ticks 1500 \
    --argstr release "$T/release" \
    >/dev/null 2>"$T/submit.err" || { cat "$T/submit.err"; fail "submit"; }
B=$(sql "SELECT id FROM Builds WHERE job = 'top'")
BB=$(sql "SELECT id FROM Builds WHERE job = 'broken'")
BF=$(sql "SELECT id FROM Builds WHERE job = 'foreign'")
TOPDRV=$(sql "SELECT drvPath FROM Builds WHERE id = $B")
[ -n "$B" ] && [ -n "$BB" ] && [ -n "$BF" ] || fail "builds not queued"

# the local store, and a machine for aarch64-linux that cannot be reached (it is
# disabled when `foreign` is sent to it)
DEAD=ssh://nobody@127.0.0.1
printf '%s\n' "local $(uname -m)-linux - 2 1 benchmark,big-parallel,nixos-test,ca-derivations" \
    "$DEAD aarch64-linux - 1 1" >"$T/machines"
start_runner --machines "$T/machines" --http-admin-token dashtok

# ---- wait until the resolved drv of `top` builds and has logged a few lines
RSTEP=
for _ in $(seq 1 600); do
    RSTEP=$(sql "SELECT stepnr FROM BuildSteps WHERE build = $B AND busy = 30 AND drvPath <> '$TOPDRV'
                 AND drvPath LIKE '%-dash-top-$SALT.drv'")
    if [ -n "$RSTEP" ] && [ "$(hget "/build/$B/step/$RSTEP/log")" = 200 ] && grep -q '^tick-3' "$T/body"; then
        break
    fi
    sleep 0.1
done
[ -n "$RSTEP" ] && grep -q '^tick-3' "$T/body" || { tail "$T/run.log"; fail "the resolved step did not start"; }
S13=$(sql "SELECT stepnr FROM BuildSteps WHERE build = $B AND status = 13")
DEPSTEP=$(sql "SELECT stepnr FROM BuildSteps WHERE build = $B AND drvPath LIKE '%-dash-dep-$SALT.drv'")
[ -n "$S13" ] && [ -n "$DEPSTEP" ] || fail "no status-13 row or no dep step"
RDRV=$(sql "SELECT drvPath FROM BuildSteps WHERE build = $B AND stepnr = $RSTEP")
assert_eq "$(sql "SELECT resolvedDrvPath FROM BuildSteps WHERE build = $B AND stepnr = $S13")" \
    "$(basename "$RDRV")" "resolvedDrvPath"

# ---- the page and its files
assert_eq "$(hget / -H 'Accept: text/html,application/xhtml+xml,*/*;q=0.8')" 200 "dashboard page"
case $(header Content-Type) in text/html*) ;; *) fail "page type $(header Content-Type)" ;; esac
header Content-Security-Policy | grep -q "default-src 'none'" || fail "no CSP on the page"
header Content-Security-Policy | grep -q "script-src 'self'" || fail "CSP script-src"
grep -q '<script src="/static/app.js"' "$T/body" || fail "page does not load app.js"
if grep -Eq '(src|href)="(https?:)?//' "$T/body"; then fail "the page refers to another site"; fi
assert_eq "$(hget /)" 200 "the page without an Accept header"
case $(header Content-Type) in text/html*) ;; *) fail "/ without Accept: $(header Content-Type)" ;; esac
assert_eq "$(hget / -H 'Accept: application/json')" 200 "index for clients asking for JSON"
assert_eq "$(jpy "$T/body" 'j["service"]')" "sluice" "JSON index"
assert_eq "$(jpy "$T/body" '"GET /api/builds" in j["endpoints"]')" "True" "index lists /api/builds"
assert_eq "$(hget /static/app.js)" 200 "app.js"
case $(header Content-Type) in text/javascript*) ;; *) fail "app.js type" ;; esac
cmp -s "$T/body" "$ROOT/src/http/static/app.js" || fail "app.js differs from its source"
assert_eq "$(hget /static/style.css)" 200 "style.css"
case $(header Content-Type) in text/css*) ;; *) fail "style.css type" ;; esac
assert_eq "$(hget /static/index.html)" 200 "index.html"
assert_eq "$(hget /static/nope.js)" 404 "unknown file"
assert_eq "$(hget /static/a/b)" 404 "nested path"
assert_eq "$(hget /static/app.js -X POST)" 405 "POST a file"
assert_eq "$(header Allow)" "GET, HEAD" "Allow"
assert_eq "$(hget /api/nothing)" 404 "unknown api"
assert_eq "$(hget /static/app.js -I)" 200 "HEAD a file"
assert_eq "$(header Content-Length)" "$(stat -c %s "$ROOT/src/http/static/app.js")" "HEAD content-length"

# ---- the JSON lists and the log stream, against the database
$CHECK api "$BASE" "$DB" "$B" "$S13" "$RSTEP" "$DEPSTEP" || fail "api checks"
$CHECK stream "$BASE" "$DB" "$B" "$S13" "$RSTEP" || fail "stream checks"
STREAM=/build/$B/step/$RSTEP/log/stream
streams() { hget /api/queue >/dev/null && jpy "$T/body" 'j["logStreams"]'; }
wait_streams() { # N: until N streams are open
    local _
    for _ in $(seq 1 100); do [ "$(streams)" = "$1" ] && return 0; sleep 0.05; done
    fail "$(streams) log streams open, expected $1"
}
wait_streams 0
pids=()
for _ in 1 2 3 4 5 6 7 8; do
    curl -sN "$BASE$STREAM" >/dev/null &
    pids+=($!)
done
wait_streams 8
assert_eq "$(hget "$STREAM")" 503 "a ninth stream"
grep -q "too many log streams" "$T/body" || fail "503 does not say why"
kill "${pids[@]}"
wait "${pids[@]}" 2>/dev/null || true
wait_streams 0
$CHECK sse "$BASE$STREAM" 0.5 >"$T/sse4.json"
assert_eq "$(jpy "$T/sse4.json" 'j["status"]')" 200 "streams freed after their clients left"

# ---- the browser
[ "$(sql "SELECT busy FROM BuildSteps WHERE build = $B AND stepnr = $RSTEP")" = 30 ] ||
    fail "the step ended before the browser test"
for _ in $(seq 1 300); do
    [ "$(sql "SELECT finished FROM Builds WHERE id = $BB")" = 1 ] && break
    sleep 0.1
done
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $BB")" "1|1" "broken failed before the actions"
assert_eq "$(sql "SELECT count(*) FROM FailedPaths")" 1 "broken's output is a cached failure"
T_ACT=$(date +%s)
$BROWSER check "$BASE" "$T/shots" "$B" "$S13" "$RSTEP" --bulk-first "$BULK_FIRST" --release "$T/release" \
    --disabled "$DEAD" --token dashtok --failed "$BB" --queued "$BF" --empty "$BQ" ||
    { touch "$T/release"; fail "browser checks"; }
for p in overview build machines builds builds-filtered build-finished build-420px overview-420px; do
    [ -s "$T/shots/$p.png" ] || fail "no screenshot $p.png"
    "$PY" -c 'import sys; sys.exit(open(sys.argv[1], "rb").read(8) != b"\x89PNG\r\n\x1a\n")' \
        "$T/shots/$p.png" || fail "$p.png is not a PNG"
done
cp "$T/shots/"*.png "$OUTDIR/"
# what the buttons did, in the database, with the events Hydra's web server sends
[ "$(sql "SELECT count(*) FROM sluice_events WHERE channel = 'builds_restarted'")" -ge 1 ] ||
    fail "the dashboard's restart sent no builds_restarted"
assert_eq "$(sql "SELECT count(*) FROM sluice_events WHERE channel = 'builds_bumped'")" 1 "builds_bumped"
assert_eq "$(sql "SELECT count(*) FROM sluice_events WHERE channel = 'builds_cancelled'")" 1 "builds_cancelled"
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $BF")" "1|4" "the cancelled build's row"
assert_eq "$(sql "SELECT globalPriority BETWEEN $T_ACT AND $(date +%s) FROM Builds WHERE id = $BF")" 1 \
    "bumped to the time of the bump (as Hydra's web server does)"

# ---- after the build
for _ in $(seq 1 600); do
    [ "$(sql "SELECT finished FROM Builds WHERE id = $B")" = 1 ] && break
    sleep 0.1
done
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $B")" "1|0" "top finished"
"$SLUICE" log "$B" "$RSTEP" >"$T/log.cli" || fail "sluice log"
$CHECK final "$BASE" "$B" "$RSTEP" "$T/log.cli" || fail "final stream checks"
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $BB")" "1|1" "broken failed"
# restarted after its cached failure was cleared: built (and failed) a second time, not a
# cached failure (status 8)
assert_eq "$(sql "SELECT group_concat(status, ',') FROM (SELECT status FROM BuildSteps
                  WHERE build = $BB AND type = 0 ORDER BY stepnr)")" "1,1" "the restarted build's steps"

stop_runner
echo "screenshots: $OUTDIR"
echo "ok"

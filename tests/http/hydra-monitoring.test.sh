#!/usr/bin/env bash
# Monitoring as Hydra's tools read it, during and after a real local build:
# hydra-send-stats' gauges are all defined in /status (tests/http/hydra_stats.py does
# what it does), hydra-server's /machines page lists the running local step under a
# machine of /status/machines, and /metrics has Hydra's runner's hydraqueuerunner_*
# names with the same values as sluice's own.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools
STATS="$PY $ROOT/tests/http/hydra_stats.py"
mkdir -p "$T/dir"
id=$("$SLUICE" submit "$ROOT/tests/runner/nix/jobs.nix" -A gate --argstr salt "mon$$-$RANDOM" \
    --argstr dir "$T/dir" 2>"$T/submit.err") || { cat "$T/submit.err"; fail "submit"; }
start_runner
for _ in $(seq 1 300); do
    [ "$(sql "SELECT count(*) FROM BuildSteps WHERE build = $id AND busy >= 30")" = 1 ] && break
    sleep 0.1
done
[ "$(sql "SELECT count(*) FROM BuildSteps WHERE build = $id AND busy >= 30")" = 1 ] || fail "gate never built"

# while it builds
[ "$(hget /status)" = 200 ] || fail "/status"
cp "$T/body" "$T/status.json"
$STATS sendstats "$T/status.json" || fail "hydra-send-stats would fail on /status"
assert_eq "$(jpy "$T/status.json" 'j["queueRunner"]["nrStepsBuilding"]')" 1 "nrStepsBuilding"
[ "$(hget /status/machines)" = 200 ] || fail "/status/machines"
cp "$T/body" "$T/machines.json"
sql "SELECT machine FROM BuildSteps WHERE busy <> 0" >"$T/busy.tsv"
[ -s "$T/busy.tsv" ] || fail "no busy step row"
$STATS machines "$T/machines.json" "$T/busy.tsv" || fail "hydra-server's /machines page would not show the local step"
[ "$(hget /metrics)" = 200 ] || fail "/metrics"
grep -qx 'hydraqueuerunner_steps_building 1' "$T/body" || fail "no hydraqueuerunner_steps_building 1"
grep -q '^hydraqueuerunner_machine_current_jobs{hostname="[^"]*"} 1$' "$T/body" || fail "no machine_current_jobs alias"

# after it finished
touch "$T/dir/go"
for _ in $(seq 1 300); do
    [ "$(sql "SELECT finished FROM Builds WHERE id = $id")" = 1 ] && break
    sleep 0.1
done
assert_eq "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $id")" "1|0" "gate finished"
sleep 0.2
[ "$(hget /status)" = 200 ] || fail "/status after"
cp "$T/body" "$T/status2.json"
$STATS sendstats "$T/status2.json" || fail "hydra-send-stats would fail on /status after the build"
assert_eq "$(jpy "$T/status2.json" 'j["queueRunner"]["nrStepsDone"] >= 1 and j["queueRunner"]["avgStepTimeMs"] > 0')" True \
    "nrStepsDone and avgStepTimeMs"
[ "$(hget /metrics)" = 200 ] || fail "/metrics after"
own=$(sed -n 's/^sluice_steps_finished_total{result="succeeded"} //p' "$T/body")
assert_eq "$(sed -n 's/^hydraqueuerunner_steps_finished //p' "$T/body")" "$own" "steps_finished alias"
assert_eq "$(sed -n 's/^hydraqueuerunner_builds_finished //p' "$T/body")" 1 "builds_finished alias"
stop_runner
echo "hydra monitoring: ok"

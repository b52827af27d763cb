#!/usr/bin/env bash
# SIGHUP applies the configuration to a running `sluice run`:
#  - the keys that can change at run time take effect and are named with their old and
#    new values: max-jobs (the local store's slots in /status/machines), timeout (a build
#    queued afterwards times out after 2 s, status 7), log-level (debug lines appear);
#  - keys that need a restart are named as such, a secret's value never shows;
#  - a configuration that does not validate changes nothing (the slots stay);
#  - the machines file is read again even when its size, inode and modification time
#    are unchanged (which the once-a-second look cannot see);
#  - `-v` raises the level by one: a runner started with it logs the protocol detail
#    of a step (how long BuildDerivation took), as log-level = debug does.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../http/http_lib.sh"
need_nix
need_http_tools
JOBS=$ROOT/tests/runner/nix/jobs.nix
SALT=rl$$-$(date +%s%N)
DIR=$T/dir
CONF=$SLUICE_STATE_DIR/sluice.conf
mkdir -p "$DIR" "$SLUICE_STATE_DIR"
"$SLUICE" db init >/dev/null
has() { grep -q -- "$1" "$T/run.log"; }
wait_for() {
    local i
    for i in $(seq 200); do "$@" && return 0; sleep 0.1; done
    return 1
}
slots() { # maxJobs of each machine in /status/machines, "URI=N ..."
    [ "$(hget /status/machines)" = 200 ] &&
        jpy "$T/body" '" ".join("%s=%s" % (k, m["maxJobs"]) for k, m in sorted(j["machines"].items()))'
}

# ---- the local store, no machines file
printf 'max-jobs = 1\nlog-level = info\n' >"$CONF"
start_runner
wait_for eval '[ "$(slots)" = "localhost=1" ]' || fail "slots at start: $(slots)"
has 'prepared and recorded' && fail "debug lines at log-level info"

printf '%s\n' 'max-jobs = 3 # more' 'timeout = 2' 'log-level = debug' \
    "store-uri = file://$T/cache" 'http-admin-token = s3cr3t-tok' >"$CONF"
kill -HUP "$RUN_PID"
wait_for has 'reload: applied: log-level info -> debug, max-jobs 1 -> 3, timeout 36000 -> 2$' ||
    fail "applied keys not named: $(grep reload "$T/run.log")"
wait_for has 'reload: changed, effective when sluice restarts: http-admin-token, store-uri$' ||
    fail "restart keys not named: $(grep reload "$T/run.log")"
has 's3cr3t-tok' && fail "the admin token's value in the journal"
wait_for eval '[ "$(slots)" = "localhost=3" ]' || fail "max-jobs not applied: $(slots)"

# the new timeout holds for a build queued now: gate waits a minute for a file
B=$("$SLUICE" submit "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A gate | tail -1)
[ -n "$B" ] || fail "submit"
wait_for eval '[ "$(sql "SELECT finished FROM Builds WHERE id = $B")" = 1 ]' ||
    wait_for eval '[ "$(sql "SELECT finished FROM Builds WHERE id = $B")" = 1 ]' ||
    fail "the build did not time out: $(tail -5 "$T/run.log")"
assert_eq "$(sql "SELECT buildStatus FROM Builds WHERE id = $B")" 7 "status of the timed-out build"
assert_eq "$(sql "SELECT status FROM BuildSteps WHERE build = $B AND type = 0")" 7 "step status"
has 'prepared and recorded' || fail "no debug lines at log-level debug"
has 'BuildDerivation took' || fail "no protocol detail at log-level debug"

# a broken configuration changes nothing
printf 'max-jobs = 1\nlog-level = loud\n' >"$CONF"
kill -HUP "$RUN_PID"
wait_for has "log-level: 'loud' is not a log level .*; the running configuration stays" ||
    fail "bad log-level not refused: $(grep reload "$T/run.log")"
sleep 1.5
assert_eq "$(slots)" "localhost=3" "slots after a refused reload"
stop_runner

# ---- a machines file rewritten in place with the same size and time
M=$T/machines
printf 'local x86_64-linux - 1 1\n' >"$M"
touch -d '2020-01-01 00:00:00' "$M"
printf 'machines = %s\n' "$M" >"$CONF"
start_runner -v
wait_for eval '[ "$(slots)" = "localhost=1" ]' || fail "machines file at start: $(slots)"
printf 'local x86_64-linux - 2 1\n' >"$M"
touch -d '2020-01-01 00:00:00' "$M"
sleep 2.5
assert_eq "$(slots)" "localhost=1" "an unchanged-looking machines file read without a reload"
kill -HUP "$RUN_PID"
wait_for has "reload: the machines file $M is read again" || fail "no machines line: $(grep reload "$T/run.log")"
wait_for eval '[ "$(slots)" = "localhost=2" ]' || fail "machines file not read again on SIGHUP: $(slots)"
has 'reload: configuration unchanged' || fail "no 'unchanged' line: $(grep reload "$T/run.log")"
B=$("$SLUICE" submit "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A empty | tail -1)
wait_for eval '[ "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $B")" = "1|0" ]' ||
    wait_for eval '[ "$(sql "SELECT finished, buildStatus FROM Builds WHERE id = $B")" = "1|0" ]' ||
    fail "build $B with -v: $(tail -5 "$T/run.log")"
has 'BuildDerivation took' || fail "-v: no protocol detail: $(tail -5 "$T/run.log")"
stop_runner
echo "ok"

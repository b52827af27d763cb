#!/usr/bin/env bash
# sluice run as systemd runs it (Type=notify, the journal on stderr):
#  - READY=1 on $NOTIFY_SOCKET once it serves, STOPPING=1 on SIGTERM (exit 0),
#    WATCHDOG=1 every half WATCHDOG_USEC;
#  - SIGHUP re-reads the configuration: RELOADING=1 then READY=1, the changed keys
#    applied and named; a broken file is reported and the running configuration stays
#    (what each key does after a reload: tests/cli/reload.test.sh); the machines file
#    changed with it is in effect (its slots in /status/machines);
#  - with JOURNAL_STREAM naming its stderr every line is "<N>message" (syslog
#    priority, no timestamp of its own);
#  - the journal tells the story: per step "started on" and its end with the status
#    name and duration, per build "finished: STATUS NAME", the failure's reason;
#  - /metrics has sluice_build_info{version} and the process_* metrics.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v python3 >/dev/null || skip "python3 not installed"
JOBS=$ROOT/tests/runner/nix/jobs.nix
SALT=svc$$-$(date +%s%N)
DIR=$T/dir
mkdir -p "$DIR" "$SLUICE_STATE_DIR"
PORT=$((20000 + RANDOM % 20000))

# a datagram socket that records what sluice notifies, one message a line
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
while True:
    out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
' "$T/notify.sock" "$T/notify.log" &
NPID=$!
trap 'kill $NPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done

SYSTEM=$(nix-instantiate --eval -E builtins.currentSystem | tr -d '"')
printf 'local %s - 2 1\n' "$SYSTEM" >"$T/machines"
printf 'max-retries = 1\nmachines = %s\n' "$T/machines" >"$SLUICE_STATE_DIR/sluice.conf"
"$SLUICE" db init >/dev/null
: >"$T/journal"
JS=$(stat -c '%d:%i' "$T/journal")
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=600000 JOURNAL_STREAM=$JS "$SLUICE" run --http "127.0.0.1:$PORT" \
    2>>"$T/journal" >/dev/null &
RPID=$!
notified() { grep -qx "$1" "$T/notify.log" 2>/dev/null; }
count() { grep -cx "$1" "$T/notify.log" 2>/dev/null || true; }
wait_for() {
    local i
    for i in $(seq 200); do "$@" && return 0; sleep 0.1; done
    return 1
}
wait_for notified READY=1 || fail "no READY=1: $(cat "$T/notify.log" "$T/journal")"
wait_for eval '[ "$(count WATCHDOG=1)" -ge 3 ]' || fail "no WATCHDOG=1 every 0.3 s: $(cat "$T/notify.log")"

# journal lines of a run with a failure
"$SLUICE" submit "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A empty -A fail >/dev/null
has() { grep -q "$1" "$T/journal"; }
wait_for has "finished: failed" || fail "no build finished line: $(cat "$T/journal")"
wait_for has "finished: succeeded" || fail "no succeeded build line: $(cat "$T/journal")"
grep -q '^<6>build [0-9]* step 1: empty started on localhost$' "$T/journal" || fail "step start line: $(cat "$T/journal")"
grep -q '^<6>build [0-9]* step 1: empty on localhost succeeded in [0-9]* s$' "$T/journal" ||
    fail "step end line: $(cat "$T/journal")"
grep -q '^<4>build [0-9]* step 1: broken on localhost failed after [0-9]* s: .*exit code 1' "$T/journal" ||
    fail "failed step line with its reason: $(cat "$T/journal")"
grep -q '^<4>build [0-9]* finished: failed$' "$T/journal" || fail "failed build line: $(cat "$T/journal")"
grep -vq '^<[0-7]>' "$T/journal" && fail "a journal line without a priority: $(grep -v '^<[0-7]>' "$T/journal")"
grep -q '^<[0-7]>[0-9]\{4\}-' "$T/journal" && fail "a timestamp under the journal: $(cat "$T/journal")"
grep -q 'BuildDerivation took' "$T/journal" && fail "protocol detail at the default level (-v adds it: tests/cli/reload.test.sh)"

# metrics
m=$(curl -s "http://127.0.0.1:$PORT/metrics")
grep -q "^sluice_build_info{version=\"$(cat "$ROOT/VERSION")\"} 1$" <<<"$m" || fail "no sluice_build_info: $(grep build_info <<<"$m")"
for k in process_cpu_seconds_total process_resident_memory_bytes process_open_fds process_start_time_seconds; do
    v=$(sed -n "s/^$k \([0-9.e+]*\)$/\1/p" <<<"$m")
    [ -n "$v" ] || fail "no $k in /metrics"
    awk -v x="$v" 'BEGIN { exit !(x > 0) }' || fail "$k is $v"
done
st=$(sed -n 's/^process_start_time_seconds \([0-9.e+]*\)$/\1/p' <<<"$m")
awk -v x="$st" -v now="$(date +%s)" 'BEGIN { exit !(x > now - 600 && x <= now + 1) }' ||
    fail "process_start_time_seconds $st is not about now"

# SIGHUP: reload (the machines file changed too)
max_jobs() {
    curl -sf "http://127.0.0.1:$PORT/status/machines" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["machines"]["localhost"]["maxJobs"])'
}
assert_eq "$(max_jobs)" 2 "maxJobs from the machines file"
printf 'local %s - 3 1\n' "$SYSTEM" >"$T/machines"
printf 'max-retries = 4\ntimeout = 99\nmachines = %s\n' "$T/machines" >"$SLUICE_STATE_DIR/sluice.conf"
kill -HUP $RPID
wait_for eval '[ "$(max_jobs)" = 3 ]' || fail "the changed machines file is not in effect: $(max_jobs)"
wait_for has "reload: applied: timeout 36000 -> 99, max-retries 1 -> 4" ||
    fail "reload did not apply and name the changes: $(cat "$T/journal")"
wait_for eval '[ "$(count RELOADING=1)" = 1 ] && [ "$(count READY=1)" = 2 ]' ||
    fail "RELOADING/READY around the reload: $(cat "$T/notify.log")"
printf 'max-retries = many\n' >"$SLUICE_STATE_DIR/sluice.conf"
kill -HUP $RPID
wait_for has "reload: .*max-retries: 'many' is not an integer; the running configuration stays" ||
    fail "a bad reload: $(cat "$T/journal")"
kill -0 $RPID || fail "sluice died on a bad reload"
curl -sf "http://127.0.0.1:$PORT/status" >/dev/null || fail "no /status after the reloads"

kill -TERM $RPID
rc=0
wait $RPID || rc=$?
assert_eq "$rc" 0 "exit status after SIGTERM"
notified STOPPING=1 || fail "no STOPPING=1: $(cat "$T/notify.log")"
echo "service behaviour checked"

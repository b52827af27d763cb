#!/usr/bin/env bash
# Limits of a build on builder hosts (b1 ssh://, b2 ssh-ng://) and on a misbehaving
# serve peer (tests/failures/fakepeer.py: it floods its build log forever, ignoring any
# limit, and never answers), all in one `sluice run`:
#  - max silent time, per build (--max-silent 2): `silent` and `after-silent` (which
#    needs it) both end with status 7, the dependent one too (not 2);
#  - timeout, per build (--timeout 3) on a build that keeps printing: status 7;
#  - max-log-size 20000, enforced by sluice while streaming whatever the peer does:
#    status 10 on both protocols and on the fake peer, the session closed (the builder
#    is gone from the host, the fake peer exits), the stored log near the limit;
#  - max-output-size 100000 against a 200 kB output, from the builder's NAR sizes
#    before anything is copied back: status 11, the output not in the local store.
# None of these builds waits for the minute its builder would take.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
FAKE="python3%20$ROOT/tests/failures/fakepeer.py"
export FAKEPEER_PIDFILE=$DIR/fakepeer.pid
machines_file 'ssh://b1 x86_64-linux - 4 1 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 4 1 ca-derivations,hop2' \
    "ssh://localhost?remote-program=$FAKE x86_64-linux - 1 1 liar liar"
run_bg --machines "$T/machines" --max-log-size 20000 --max-output-size 100000
t0=$(date +%s)
submit --max-silent 2 --argstr sleep 30 -A silent -A afterSilent >/dev/null
submit --timeout 3 --argstr sleep 30 -A ticking >/dev/null
submit -A chatty1 -A chatty2 -A chattyLiar -A fat >/dev/null
all=$(q "SELECT id FROM Builds ORDER BY id" | tr '\n' ' ')
for id in $all; do
    wait_until 40 build_done "$id" || { tail -20 "$RUN_LOG"; fail "build $id not finished"; }
done
dt=$(($(date +%s) - t0))
echo "all finished after ${dt} s"
[ "$dt" -le 25 ] || fail "limits took ${dt} s to act"
for id in $all; do
    echo "build $id $(q "SELECT job FROM Builds WHERE id = $id"): $(build_row "$id")"
    steps_of "$id" | sed 's/^/    /'
done

check() { # JOB STATUS MESSAGE-PATTERN
    local id
    id=$(build_id "$1")
    assert_eq "$(build_row "$id")" "1|$2" "$1"
    q "SELECT errorMsg FROM BuildSteps WHERE build = $id AND status = $2" | grep -qiE "$3" ||
        fail "$1: error message: $(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")"
}
check silent 7 "no output for 2 seconds|silent"
check afterSilent 7 "no output for 2 seconds|silent"
assert_eq "$(q "SELECT propagatedFrom FROM BuildSteps WHERE build = $(build_id afterSilent) AND status = 7")" \
    "$(build_id silent)" "after-silent's row propagated from the build that ran the step"
check ticking 7 "timed out after 3 seconds|timed out"
check chatty1 10 "log limit|bytes of log output"
check chatty2 10 "log limit|bytes of log output"
check chattyLiar 10 "log limit"
check fat 11 "output size [0-9]+ exceeds the limit of 100000"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id chatty1)")" ssh://b1 "chatty-1 on b1"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $(build_id chatty2)")" ssh-ng://b2 "chatty-2 on b2"
q "SELECT machine FROM BuildSteps WHERE build = $(build_id chattyLiar)" | grep -q '^ssh://localhost' ||
    fail "chatty-liar not on the fake peer"

# the stored logs end near the limit
for job in chatty1 chatty2 chattyLiar; do
    n=$("$SLUICE" log "$(build_id "$job")" | wc -c)
    echo "$job: $n bytes of log"
    [ "$n" -ge 15000 ] && [ "$n" -le 90000 ] || fail "$job: $n bytes of log for a limit of 20000"
done
# sessions closed: no builder left on the hosts, the fake peer gone
for job in silent ticking chatty-1 chatty-2; do
    for i in 1 2; do
        wait_until 10 eval "! host_has $i 'farm-mark $job $SALT'" || fail "$job still runs on b$i"
    done
done
pid=$(cat "$FAKEPEER_PIDFILE")
wait_until 10 eval "! kill -0 $pid 2>/dev/null" || fail "the fake peer still runs"
fat_out=$(nix-store -q --outputs "$(q "SELECT drvPath FROM Builds WHERE id = $(build_id fat)")")
[ ! -e "$fat_out" ] || fail "the oversized output was copied back"
grep -q "ssh://b1 disabled\|ssh-ng://b2 disabled" "$RUN_LOG" && fail "a limit disabled a machine"
run_stop
echo "ok: limits"

#!/usr/bin/env bash
# A builder host killed in the middle of a build (harness `crash`: sshd, Nix and the
# builder die at once), on both protocols.  b1 (ssh://) and b2 (ssh-ng://) have one job
# each; machine-backoff-scale 0.05 makes the disable times 3-4.5 s, then 9-10.5 s.
#  - gate-2 runs on b2, b2 crashes: the attempt row gets status 3, the step runs again
#    on b1 (the only other host that fits) and succeeds; b2 is disabled (3-4 s);
#  - b2 stays down: when its backoff ends it is tried again, fails to connect and is
#    disabled for longer (9-10 s, the second step of 60*3^(n-1) scaled); once restarted
#    it answers and gets steps again (consecutive failures reset);
#  - the same with b1 (serve protocol) crashing under gate-1.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
machines_file 'ssh://b1 x86_64-linux - 1 1 ca-derivations,hop1,hop2' \
    'ssh-ng://b2 x86_64-linux - 1 2 ca-derivations,hop2'
# gate-1 needs hop1 (only b1), gate-2 hop2 (b2 first: speed 2, then b1)
run_bg --machines "$T/machines" --machine-backoff-scale 0.05 --retry-interval 1
building_on() {
    [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND busy = 30 AND machine = '$2'")" = 1 ]
}
disabled_for() { grep -E "machine $1 disabled for [0-9]+ s" "$RUN_LOG" | sed -E 's/.*disabled for ([0-9]+) s.*/\1/'; }

# --- b2 (ssh-ng://) crashes under gate-2
g2=$(submit --argstr sleep 60 -A gate2)
wait_until 20 building_on "$g2" ssh-ng://b2 || { tail "$RUN_LOG"; fail "gate-2 never ran on b2"; }
wait_until 10 host_has 2 "farm-mark gate-2" || fail "no gate-2 builder on b2"
"$M" crash 2
t0=$(date +%s)
wait_until 20 building_on "$g2" ssh://b1 || { tail "$RUN_LOG"; fail "gate-2 not retried on b1"; }
echo "gate-2 running again on b1 $(($(date +%s) - t0)) s after the crash"
steps_of "$g2"
row=$(q "SELECT status || '|' || coalesce(errorMsg, '') FROM BuildSteps WHERE build = $g2 AND stepnr = 1")
grep -q '^3|' <<<"$row" || fail "attempt on b2: $row"
assert_eq "$(disabled_for ssh-ng://b2 | head -1 | grep -cE '^[34]$')" 1 "first disable: 3-4 s"
touch "$DIR/go"
wait_until 20 build_done "$g2" || fail "gate-2 not finished"
assert_eq "$(build_row "$g2")" "1|0" "gate-2 succeeded"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE build = $g2 AND status = 0")" ssh://b1 "gate-2 built on b1"

# --- b2 still down: tried again after the backoff, disabled for longer
rm -f "$DIR/go"
leaves=$(submit --arg n 6 --argstr sleep 1 -A leaves)
disabled_times() { [ "$(disabled_for "$1" | wc -l)" -ge "$2" ]; }
wait_until 30 disabled_times ssh-ng://b2 2 ||
    { tail "$RUN_LOG"; fail "b2 not tried again after its backoff"; }
second=$(disabled_for ssh-ng://b2 | sed -n 2p)
[ "$second" -ge 9 ] && [ "$second" -le 10 ] || fail "second disable: $second s, expected 9-10"
"$M" restart 2
for id in $leaves; do wait_until 60 build_done "$id" || fail "leaf build $id not finished"; done
for id in $leaves; do assert_eq "$(build_row "$id")" "1|0" "leaf build $id"; done
# after the backoff b2 answers again: new work reaches it (the leaves may all have
# finished on b1 while b2 was still disabled, so wait for the backoff to end first)
wait_until 15 sh -c "'$SLUICE' status | grep -q 'ssh-ng://b2: enabled'" ||
    fail "b2 still disabled after its backoff"
mid=$(submit -A mid)
wait_until 30 build_done "$mid" || fail "mid not finished"
q "SELECT machine FROM BuildSteps WHERE status = 0 AND machine = 'ssh-ng://b2'" | grep -q . ||
    { q "SELECT build, drvPath, machine, status FROM BuildSteps"; fail "b2 never built again after its restart"; }
wait_until 5 sh -c "'$SLUICE' status | grep -q 'ssh-ng://b2: enabled'" || fail "b2 not shown enabled again"

# --- b1 (ssh://) crashes under gate-1; gate-1 waits for b1 to come back (nothing else fits)
g1=$(submit --argstr sleep 60 -A gate1)
wait_until 20 building_on "$g1" ssh://b1 || { tail "$RUN_LOG"; fail "gate-1 never ran on b1"; }
wait_until 10 host_has 1 "farm-mark gate-1" || fail "no gate-1 builder on b1"
"$M" crash 1
wait_until 10 sh -c "grep -q 'machine ssh://b1 disabled' '$RUN_LOG'" || fail "b1 not disabled after its crash"
assert_eq "$(q "SELECT status FROM BuildSteps WHERE build = $g1 AND stepnr = 1")" 3 "attempt on b1"
"$M" restart 1
touch "$DIR/go"
wait_until 40 build_done "$g1" || { tail "$RUN_LOG"; fail "gate-1 not rebuilt on b1 after its restart"; }
assert_eq "$(build_row "$g1")" "1|0" "gate-1 succeeded"
steps_of "$g1"
run_stop
for i in 1 2; do
    d=$(builder_drvs $i)
    [ -z "$d" ] || fail "b$i holds .drv files: $d"
done
echo "ok: crashed builder hosts"

#!/usr/bin/env bash
# Network cuts (harness `cut`: a host's packets vanish, nothing closes) during silent
# builds, on both protocols at once.  b1 (ssh://) and b2 (ssh-ng://) run gate-1 and
# gate-2, builds that print nothing; b3 has both features and takes the retries.  With
# ssh-server-alive-interval 2 and -count-max 2, ssh gives up on a cut host after about
# 6 s: each session must end (never hang), the attempt row get status 3, the host be
# disabled and the step run again on b3 — well within a minute of the cut.  After
# `uncut` the hosts come back into use.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 3
machines_file 'ssh://b1 x86_64-linux - 1 3 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 1 3 ca-derivations,hop2' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations,hop1,hop2'
run_bg --machines "$T/machines" --ssh-server-alive-interval 2 --ssh-server-alive-count-max 2 \
    --machine-backoff-scale 0.05
building_on() {
    [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND busy = 30 AND machine = '$2'")" = 1 ]
}
g1=$(submit --argstr sleep 60 -A gate1)
g2=$(submit --argstr sleep 60 -A gate2)
wait_until 20 building_on "$g1" ssh://b1 || { tail "$RUN_LOG"; fail "gate-1 never ran on b1"; }
wait_until 20 building_on "$g2" ssh-ng://b2 || { tail "$RUN_LOG"; fail "gate-2 never ran on b2"; }
sleep 1
"$M" cut 1
"$M" cut 2
t0=$(date +%s)
wait_until 60 building_on "$g1" ssh-ng://b3 || { tail "$RUN_LOG"; fail "gate-1 not retried on b3"; }
wait_until 60 building_on "$g2" ssh-ng://b3 || { tail "$RUN_LOG"; fail "gate-2 not retried on b3"; }
dt=$(($(date +%s) - t0))
echo "both steps running again on b3 ${dt} s after the cut"
[ "$dt" -le 30 ] || fail "the cut took ${dt} s to notice"
for id in $g1 $g2; do
    row=$(q "SELECT status || '|' || coalesce(errorMsg, '') FROM BuildSteps WHERE build = $id AND stepnr = 1")
    echo "attempt: $row"
    grep -q '^3|' <<<"$row" || fail "attempt of build $id: $row"
done
grep -q "machine ssh://b1 disabled" "$RUN_LOG" || fail "b1 not disabled"
grep -q "machine ssh-ng://b2 disabled" "$RUN_LOG" || fail "b2 not disabled"
touch "$DIR/go"
for id in $g1 $g2; do
    wait_until 30 build_done "$id" || fail "build $id not finished"
    assert_eq "$(build_row "$id")" "1|0" "build $id"
done

# the network back: both hosts get work again
"$M" uncut 1
"$M" uncut 2
rm -f "$DIR/go"
sleep 5
mid=$(submit -A mid)
wait_until 60 build_done "$mid" || { tail "$RUN_LOG"; fail "mid not finished"; }
h1=$(submit --argstr sleep 0 -A gate1)
wait_until 60 build_done "$h1" || { tail "$RUN_LOG"; fail "gate-1 (again) not finished"; }
q "SELECT build, drvPath, machine, status FROM BuildSteps WHERE build IN ($mid, $h1)"
run_stop
q "SELECT machine FROM BuildSteps WHERE status = 0 AND build IN ($mid, $h1)" | grep -qE '^ssh-ng://b2$|^ssh://b1$' ||
    fail "neither b1 nor b2 built anything after uncut"
echo "ok: network cuts end in a timeout and a retry elsewhere"

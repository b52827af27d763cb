#!/usr/bin/env bash
# A farm of builder hosts with their own /nix over real ssh (tests/harness/machines.sh):
#   b1 ssh://     1 job,  speed 1
#   b2 ssh-ng://  3 jobs, speed 2
#   b3 ssh-ng://  2 jobs, speed 1, feature `extra`
#   b4 ssh-ng://  2 jobs, speed 1, mandatory feature `big` (nothing else may run there)
# and no local store (not listed).  Asserts, from BuildSteps:
#  - a lone step goes to the machine with the best speed factor (b2);
#  - twelve 3-second leaves spread over b1, b2 and b3, never more at once on a host than
#    its max jobs, b2 really running several at once; nothing on b4, nothing local;
#  - the `extra` step runs on b3, the `big` step on b4, a `builtin` step (builtin:fetchurl)
#    somewhere, and steps for a system or a feature no host has fail with status 9
#    after max-unsupported-time (2 s), without holding up the rest;
#  - outputs are those of a plain `nix-store -r` in a private store, and no builder store
#    ever holds a .drv.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 4
machines_file 'ssh://b1 x86_64-linux - 1 1 ca-derivations' \
    'ssh-ng://b2 x86_64-linux - 3 2 ca-derivations' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations,extra' \
    'ssh-ng://b4 x86_64-linux - 2 1 big big'
echo "blob $SALT" >"$DIR/blob"
FLAGS=(--machines "$T/machines" --max-unsupported-time 2)

# --- a lone step: the best speed factor wins
sl build "${FLAGS[@]}" "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" -A base
assert_eq "$rc" 0 "build base: $err"
b=$(build_id base)
assert_eq "$(steps_of "$b" | cut -d'|' -f2-)" "base|0|ssh-ng://b2" "base ran on b2"

# --- the spread, features, builtin and an unsupported system, all at once
run_bg "${FLAGS[@]}"
t0=$(date +%s)
submit --arg n 12 --argstr sleep 3 -A spread -A extra -A big -A fetched -A alien -A quantum >/dev/null
spread=$(build_id spread) extra=$(build_id extra) big=$(build_id big)
fetched=$(build_id fetched) alien=$(build_id alien) quantum=$(build_id quantum)
wait_until 15 build_done "$alien" || fail "alien build not finished"
wait_until 15 build_done "$quantum" || fail "quantum build not finished"
t_alien=$(($(date +%s) - t0))
wait_until 90 build_done "$spread" || { tail -20 "$RUN_LOG"; fail "spread not finished"; }
for id in $extra $big $fetched; do wait_until 30 build_done "$id" || fail "build $id not finished"; done
run_stop

assert_eq "$(build_row "$alien")" "1|9" "alien: unsupported"
[ "$t_alien" -ge 2 ] || fail "alien failed after ${t_alien}s, before max-unsupported-time"
assert_eq "$(q "SELECT status || '|' || machine FROM BuildSteps WHERE build = $alien")" "9|" \
    "alien step row"
q "SELECT errorMsg FROM BuildSteps WHERE build = $alien" | grep -q "unsupported system type 'riscv64-none'" ||
    fail "alien: error message: $(q "SELECT errorMsg FROM BuildSteps WHERE build = $alien")"
assert_eq "$(build_row "$quantum")" "1|9" "quantum: unsupported"
q "SELECT errorMsg FROM BuildSteps WHERE build = $quantum" | grep -q "with features quantum" ||
    fail "quantum: error message: $(q "SELECT errorMsg FROM BuildSteps WHERE build = $quantum")"
for id in $spread $extra $big $fetched; do
    assert_eq "$(build_row "$id")" "1|0" "build $id ($(q "SELECT job FROM Builds WHERE id = $id"))"
done
steps_of "$spread"

# every leaf ran exactly once, on b1, b2 or b3
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $spread AND status = 0")" 13 \
    "spread: 12 leaves and the top"
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE machine IN ('', 'ssh-ng://b4') AND build NOT IN ($big, $alien, $quantum)")" 0 \
    "steps on b4 or the local store"
for m in ssh://b1 ssh-ng://b2 ssh-ng://b3; do
    n=$(q "SELECT count(*) FROM BuildSteps WHERE build = $spread AND machine = '$m'")
    echo "$m: $n steps of the spread, at most $(max_conc "$m") at once"
    [ "$n" -ge 1 ] || fail "no step of the spread on $m"
done
c1=$(max_conc ssh://b1) c2=$(max_conc ssh-ng://b2) c3=$(max_conc ssh-ng://b3) c4=$(max_conc ssh-ng://b4)
[ "$c1" -le 1 ] || fail "b1 ran $c1 steps at once (max jobs 1)"
[ "$c2" -le 3 ] || fail "b2 ran $c2 steps at once (max jobs 3)"
[ "$c3" -le 2 ] || fail "b3 ran $c3 steps at once (max jobs 2)"
[ "$c4" -le 2 ] || fail "b4 ran $c4 steps at once (max jobs 2)"
[ "$c2" -ge 2 ] || fail "b2 never ran two steps at once"

assert_eq "$(steps_of "$extra" | cut -d'|' -f2-)" "extra|0|ssh-ng://b3" "extra ran on b3"
assert_eq "$(steps_of "$big" | cut -d'|' -f2-)" "big|0|ssh-ng://b4" "big ran on the host with mandatory big"
steps_of "$fetched" | grep -qE '^1\|blob\|0\|ssh' || fail "fetched: $(steps_of "$fetched")"

# outputs as Nix gives them; no .drv on any builder
ours=$(q "SELECT path FROM BuildOutputs WHERE build IN ($spread, $extra, $big, $fetched)" | sort)
theirs=$(nix_oracle $(q "SELECT drvPath FROM Builds WHERE id IN ($spread, $extra, $big, $fetched)"))
assert_eq "$ours" "$theirs" "outputs against nix-store -r"
assert_eq "$(cat "$(q "SELECT path FROM BuildOutputs WHERE build = $spread")" | wc -l)" 12 "spread output"
for i in 1 2 3 4; do
    d=$(builder_drvs $i)
    [ -z "$d" ] || fail "b$i holds .drv files: $d"
done
echo "ok: spread over the farm"

#!/usr/bin/env bash
# Content-addressed graphs over a farm of three builder hosts (b1 ssh://, b2 and b3
# ssh-ng://) plus b4, the fastest, without ca-derivations; no local store:
#  - a CA chain whose links need features only one host each has (hop1 on b1, hop2 on
#    b2, hop3 on b3), with a deferred IA node on top: every link is resolved with the
#    output of the link before it, built on another host, and builds; its status-13
#    row names the host its resolved step went to, as Hydra's runner writes it;
#  - a 60-node layered CA DAG and examples/demo.nix (fixed-output, IA, CA, deferred)
#    at the same time, spread over the hosts;
#  - b4 gets input-addressed steps only (no floating CA drv, no unresolved deferred);
#  - every output is what a plain `nix-store -r` gives in a private store, the local
#    store knows every CA output (nix-store -r --max-jobs 0 finds them without
#    building), and no builder store ever holds a .drv (neither P nor a resolved P');
#  - the runner reports each host's Nix release.
# tests/farm/matrix.test.sh runs this on the Nix matrix (b2 Nix 2.26, b3 Nix 2.3x).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 4
machines_file 'ssh://b1 x86_64-linux - 2 1 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 2 2 ca-derivations,hop2' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations,hop3' \
    'ssh-ng://b4 x86_64-linux - 4 10'
DAG=$ROOT/tests/farm/nix/dag.nix

run_bg --machines "$T/machines"
submit -A hopTop >/dev/null
hop=$(build_id hopTop)
"$SLUICE" submit "$DAG" --argstr n 60 --argstr layers 6 --arg ca true --argstr salt "$SALT" >"$T/dag.ids"
"$SLUICE" submit "$ROOT/examples/demo.nix" --argstr salt "$SALT" >"$T/demo.ids"
all=$(q "SELECT id FROM Builds ORDER BY id" | tr '\n' ' ')
for id in $all; do
    wait_until 120 build_done "$id" || { tail -20 "$RUN_LOG"; fail "build $id not finished"; }
done
# every host's Nix release as the runner reports it (machines.json = /status/machines)
wait_until 10 test -f "$SLUICE_STATE_DIR/machines.json" || fail "no machines.json"
sleep 2.5 # rewritten every 2 s: one written after every host had a session
check_nix_versions
run_stop
for id in $all; do assert_eq "$(build_row "$id")" "1|0" "build $id"; done

# the hop chain: each link on its host, resolved links from the second on
steps_of "$hop"
for i in 1 2 3; do
    m=$(q "SELECT machine FROM BuildSteps WHERE build = $hop AND status = 0 AND drvPath LIKE '%-hop-$i.drv'")
    assert_eq "$m" "$(sed -n "${i}p" "$T/machines" | cut -d' ' -f1)" "hop-$i ran on the host with hop$i"
done
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $hop AND status = 13")" 3 \
    "hop-2, hop-3 and hop-top resolved"
# a status-13 row names the machine its resolved step went to, as Hydra's runner writes it
for i in 2 3; do
    m=$(q "SELECT machine FROM BuildSteps WHERE build = $hop AND status = 13 AND drvPath LIKE '%-hop-$i.drv'")
    assert_eq "$m" "$(sed -n "${i}p" "$T/machines" | cut -d' ' -f1)" "the status-13 row of hop-$i"
done
assert_eq "$(q "SELECT count(*) FROM BuildSteps r WHERE r.status = 13 AND r.machine <> (SELECT s.machine
                FROM BuildSteps s WHERE s.build = r.build AND s.status = 0
                AND s.drvPath = '/nix/store/' || r.resolvedDrvPath)")" 0 \
    "status-13 rows name the machine that built their resolved step"

# the DAG and the demo spread over the hosts
for m in ssh://b1 ssh-ng://b2 ssh-ng://b3; do
    n=$(q "SELECT count(*) FROM BuildSteps WHERE status = 0 AND machine = '$m'")
    echo "$m: $n steps"
    [ "$n" -ge 3 ] || fail "only $n steps on $m"
done
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE machine = '' AND status <> 13")" 0 "local steps"
# b4 (fastest, no ca-derivations) takes input-addressed steps only: never a floating CA
# drv (P or P'); deferred ones only once resolved to an IA drv
on4=$(q "SELECT drvPath FROM BuildSteps WHERE machine = 'ssh-ng://b4'" | sed -E 's#^/nix/store/[a-z0-9]{32}-##' | sort)
echo "on b4: $(echo $on4)"
[ -n "$on4" ] || fail "b4 built nothing"
grep -E '^(n-|demo-ca-|hop-[123])' <<<"$on4" && fail "floating CA steps on b4"

# outputs as Nix builds them; the local store knows the CA outputs
drvs=$(q "SELECT drvPath FROM Builds ORDER BY id")
ours=$(q "SELECT path FROM BuildOutputs" | sort)
theirs=$(nix_oracle $drvs)
assert_eq "$ours" "$theirs" "outputs against nix-store -r"
known=$(nix-store -r --max-jobs 0 $drvs 2>"$T/known.err" | sort) ||
    fail "the local store lacks realisations: $(tail -3 "$T/known.err")"
assert_eq "$known" "$theirs" "outputs the local store finds"
for i in 1 2 3 4; do
    d=$(builder_drvs $i)
    [ -z "$d" ] || fail "b$i holds .drv files: $d"
done
echo "ok: CA graphs over the farm"
